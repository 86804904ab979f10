"""Starting and stopping the processes a benchmark needs: the sandbox (``unlimcall-sandbox
serve``, its production configuration, started by ``unlimcall_sandbox.testing.launch``),
the reference app and the webhook receiver.

Every process starts in a session of its own and is registered with a ``Processes`` stack,
which stops each one (SIGTERM, then SIGKILL to what is left of its session) when the stack
closes, whatever happened in between.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import httpx

from unlimcall_sandbox.testing.launch import LaunchedSandbox, free_port, launch_sandbox

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    """Resident set size of one process (VmRSS from /proc), in MiB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int
    cmd: list[str]
    env: dict[str, str]

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the process group (the sandbox's embedded Redis is in it), then
        SIGKILL after ``grace`` seconds."""
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                print(f"bench: {self.name} ignored SIGTERM for {grace:g}s; killing it")
        # Whatever is left in the group (children that outlived the parent).
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(timeout=5)


class Running(Protocol):
    """A process a run started: a ``Proc`` or a ``LaunchedSandbox``."""

    @property
    def pid(self) -> int: ...

    def stop(self) -> None: ...


class Processes:
    """Owns every process and temp dir of a run; closing it stops and removes them all."""

    def __init__(self, keep_data: bool = False) -> None:
        self.procs: list[Running] = []
        self.dirs: list[Path] = []
        self.cleanups: list[Callable[[], None]] = []
        """Run once the processes are stopped (newest first): a bench database to drop."""
        self.keep_data = keep_data

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            try:
                proc.stop()
            except Exception as err:
                print(f"bench: could not stop pid {proc.pid}: {err}")
        while self.cleanups:
            cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception as err:
                print(f"bench: cleanup failed: {err}")
        while self.dirs:
            path = self.dirs.pop()
            if self.keep_data:
                print(f"bench: kept {path}")
            else:
                shutil.rmtree(path, ignore_errors=True)

    def tempdir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"unlimcall-bench-{prefix}-"))
        self.dirs.append(path)
        return path

    def spawn(
        self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path, port: int
    ) -> Proc:
        log_path = log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path, port, cmd, env)
        self.procs.append(proc)
        return proc

    def adopt(self, proc: LaunchedSandbox) -> LaunchedSandbox:
        self.procs.append(proc)
        return proc

    def stop(self, proc: Running) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)


def wait_ready(proc: Proc, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
        try:
            resp = httpx.get(proc.base_url + path, timeout=2.0)
            if resp.status_code == 200:
                return
            last = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready after {timeout:g}s ({last}):\n{proc.log_tail()}")


@dataclass
class Sandbox:
    proc: LaunchedSandbox
    admin_token: str
    data_dir: Path
    time_scale: float
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(
            base_url=self.proc.url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=httpx.Timeout(600.0, connect=5.0),
            trust_env=False,
        )

    @property
    def base_url(self) -> str:
        return self.proc.url

    def admin(self, method: str, path: str, json: object | None = None) -> dict[str, object]:
        resp = self.client.request(method, path, json=json)
        if resp.status_code >= 300:
            raise RuntimeError(f"{method} {path} -> {resp.status_code}: {resp.text[:500]}")
        data: dict[str, object] = resp.json()
        return data

    def create_account(self, name: str, balance: float = 1e9) -> str:
        data = self.admin(
            "POST",
            "/_sandbox/accounts",
            {"companyName": name, "primaryContactEmail": "bench@example.com", "balance": balance},
        )
        return str(data["customerId"])

    def token(self, customer: str, scopes: list[str]) -> str:
        data = self.admin("POST", f"/_sandbox/accounts/{customer}/tokens", {"scopes": scopes})
        return str(data["token"])

    def agent(self, customer: str, label: str = "bench agent") -> str:
        data = self.admin("POST", f"/_sandbox/accounts/{customer}/agents", {"label": label})
        return str(data["id"])

    def sandbox_now(self) -> float:
        """Sandbox time in unix seconds (second precision, as the API renders it)."""
        from datetime import datetime

        raw = str(self.admin("GET", "/_sandbox/clock")["sandboxTime"])
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def close(self) -> None:
        self.client.close()


def start_sandbox(
    procs: Processes, name: str, *, time_scale: float = 1.0, extra_env: dict[str, str] | None = None
) -> Sandbox:
    """``unlimcall-sandbox serve`` (API + in-process worker + embedded Redis + SQLite) in
    a fresh data dir, per-request log lines off, webhooks to this machine only."""
    data_dir = procs.tempdir(name)
    env = {
        "UNLIMCALL_TIME_SCALE": f"{time_scale:g}",
        "UNLIMCALL_SEED": "7",
        # The sandbox of the tree this bench lives in, even when .venv was installed
        # from another.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        **(extra_env or {}),
    }
    proc = procs.adopt(
        launch_sandbox(env, data_dir=data_dir, cwd=ROOT, log_path=data_dir / f"sandbox-{name}.log")
    )
    return Sandbox(proc, proc.admin_token, data_dir, time_scale)


class Starter(Protocol):
    """What starts the sandbox a benchmark runs against: ``start_sandbox`` (``serve``) or
    ``bench.pg.ScaleOut`` (``api --workers 2`` + workers on PostgreSQL + Redis)."""

    def __call__(self, procs: Processes, name: str, *, time_scale: float = 1.0) -> Sandbox: ...


def worker_pid(start: Starter) -> int | None:
    """The (first) worker process of a PostgreSQL deployment: what a profile samples
    there (``serve`` runs its worker in the API process)."""
    from bench import pg

    if isinstance(start, pg.ScaleOut) and start.worker_procs:
        return start.worker_procs[0].pid
    return None


def session_ticks(sb: Sandbox, start: Starter) -> int:
    """CPU ticks so far of everything ``sb`` runs on: its processes' sessions (``serve``:
    with its embedded Redis), and on PostgreSQL the workers and the database's backends."""
    from bench import pg

    sessions = {sb.proc.pid}
    database = ""
    if isinstance(start, pg.ScaleOut):
        sessions |= {w.pid for w in start.worker_procs}
        database = start.database
    return pg.cpu_ticks(sessions, database)


def restart_sandbox(procs: Processes, sb: Sandbox) -> Sandbox:
    """Stop and start the same sandbox (same data dir, port, admin token and settings)."""
    sb.close()
    procs.stop(sb.proc)
    old = sb.proc
    proc = procs.adopt(
        launch_sandbox(
            old.env,
            data_dir=sb.data_dir,
            port=old.port,
            cwd=ROOT,
            log_path=old.log_path.with_name(f"{old.log_path.stem}-restarted.log"),
        )
    )
    return Sandbox(proc, proc.admin_token, sb.data_dir, sb.time_scale)


def start_python_module(
    procs: Processes, name: str, module: str, args: list[str], log_dir: Path, ready_path: str
) -> Proc:
    port = free_port()
    cmd = [sys.executable, "-m", module, "--port", str(port), *args]
    proc = procs.spawn(name, cmd, dict(os.environ), log_dir, port)
    wait_ready(proc, ready_path)
    return proc


def _proc_ticks(sessions: set[int]) -> int:
    """CPU ticks (user+system) of every live process in one of ``sessions``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        if int(fields[3]) in sessions:  # field 6 of stat: the session id
            total += int(fields[11]) + int(fields[12])
    return total


def _busy_ticks() -> int:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


class ForeignLoad:
    """CPU used on this machine by anything but the benchmark (this process, its waited
    children such as wrk, and the processes of ``procs``), in % of one core, over a block.
    The machine is shared: a busy neighbour skews the numbers, and this says so."""

    def __init__(self, procs: Processes) -> None:
        self.procs = procs
        self.pct = 0.0

    def _own(self) -> int:
        t = os.times()
        own = round((t.user + t.system + t.children_user + t.children_system) * 100)
        return own + _proc_ticks({p.pid for p in self.procs.procs})

    @contextmanager
    def measuring(self) -> Iterator[ForeignLoad]:
        busy0, own0, t0 = _busy_ticks(), self._own(), time.monotonic()
        try:
            yield self
        finally:
            busy1, own1, t1 = _busy_ticks(), self._own(), time.monotonic()
            ticks = max(0, (busy1 - busy0) - (own1 - own0))
            self.pct = round(ticks / max(t1 - t0, 1e-6), 1)  # 100 ticks/s = one core


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; ``peak`` is the max."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(self.interval)

    @contextmanager
    def running(self) -> Iterator[RssSampler]:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_mb(self.pid))


def run_measured(
    procs: Processes,
    sb: Sandbox,
    label: str,
    profile_dir: Path | None,
    work: Callable[[], Coroutine[Any, Any, dict[str, Any]]],
    profile_pid: int | None = None,
) -> dict[str, Any]:
    """Run ``work()`` against ``sb`` while measuring the machine's other CPU load (and,
    with a profile dir, sampling the sandbox — or ``profile_pid``, e.g. a worker process
    — with py-spy); closes ``sb``'s client. The
    result gains ``other_cpu_pct``, ``profile`` (when sampled) and ``rss_after_mb``."""
    from bench import profile

    try:
        with ExitStack() as stack:
            prof = None
            if profile_dir is not None:
                pid = sb.proc.pid if profile_pid is None else profile_pid
                prof = stack.enter_context(
                    profile.recording(pid, profile_dir / f"{label}.txt", label)
                )
            with ForeignLoad(procs).measuring() as foreign:
                result = asyncio.run(work())
            result["other_cpu_pct"] = foreign.pct
        if prof is not None:
            result["profile"] = prof
    finally:
        sb.close()
    result["rss_after_mb"] = round(sb.rss_mb(), 1)
    return result
