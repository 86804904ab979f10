"""Driving ``wrk`` (Debian's package): install it when missing, generate the Lua script
(auth headers, POST bodies, optional pacing, a JSON summary), run it, parse the result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

_MARK = "BENCH_JSON "


class WrkMissing(RuntimeError):
    pass


def ensure_wrk() -> str:
    """The path of ``wrk``; installs Debian's package (as root) when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise WrkMissing(
            "wrk is not installed and we are not root: run "
            "`sudo apt-get update && sudo apt-get install -y wrk`, then `make bench` again."
        )
    print("bench: wrk not found; installing it: apt-get update && apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise WrkMissing("apt-get install wrk succeeded but wrk is not on PATH")
    print(f"bench: installed wrk at {found}")
    return found


@dataclass(frozen=True)
class Request:
    """One request shape, replayed as is by every wrk connection."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int]
    target_rps: float | None = None

    @property
    def failed(self) -> int:
        """Socket errors, timeouts and non-2xx/3xx answers."""
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, object]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _lua_string(value: str | bytes) -> str:
    """A Lua long-bracket-free string literal with every byte escaped as ``\\ddd``."""
    raw = value.encode() if isinstance(value, str) else value
    return '"' + "".join(f"\\{b:03d}" for b in raw) + '"'


# Pacing: every thread owns a schedule of send slots 1/rate apart. wrk asks delay() before
# re-using a connection (after its response); the connection waits for the next free
# slot, or goes at once when it is late (open-loop-like while connections are free).
# Wall-clock milliseconds come from clock_gettime through LuaJIT's ffi.
_PACER = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval = %(interval_ms).6f
local next_slot = nil
function delay()
  local t = now_ms()
  if next_slot == nil or next_slot < t then
    next_slot = t
  end
  local wait = next_slot - t
  next_slot = next_slot + interval
  return wait
end
"""

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_us":%%d,"mean_us":%%f,"p50_us":%%d,"p90_us":%%d,'
    .. '"p99_us":%%d,"max_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,'
    .. '"timeout":%%d}\\n',
    summary.requests, summary.duration, latency.mean, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def script(req: Request, rate_per_thread: float | None = None) -> str:
    lines = [
        f"wrk.method = {_lua_string(req.method)}",
        f"wrk.path = {_lua_string(req.path)}",
        "wrk.headers = {}",
    ]
    for name, value in req.headers.items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    if req.body is not None:
        lines.append(f"wrk.body = {_lua_string(req.body)}")
    text = "\n".join(lines) + "\n"
    if rate_per_thread is not None:
        text += _PACER % {"interval_ms": 1000.0 / rate_per_thread}
    text += _DONE % {"mark": _MARK}
    return text


def run(
    base_url: str,
    req: Request,
    *,
    duration: float,
    connections: int = 32,
    threads: int = 2,
    rate: float | None = None,
    timeout: float = 5.0,
) -> WrkResult:
    """Run wrk against ``base_url + req.path``: closed loop at full speed, or paced to
    ``rate`` requests/s in total when given."""
    binary = ensure_wrk()
    per_thread = None if rate is None else rate / threads
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        lua = Path(tmp) / "bench.lua"
        lua.write_text(script(req, per_thread))
        cmd = [
            binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={max(1, round(timeout))}s",
            "-s",
            str(lua),
            base_url.rstrip("/") + req.path,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            data = json.loads(line[len(_MARK) :])
            break
    else:
        raise RuntimeError(f"wrk failed (rc={proc.returncode}): {proc.stdout}\n{proc.stderr}")
    seconds = data["duration_us"] / 1e6
    return WrkResult(
        requests=data["requests"],
        duration_s=seconds,
        rps=data["requests"] / seconds if seconds else 0.0,
        mean_ms=data["mean_us"] / 1000,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors={k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")},
        target_rps=rate,
    )
