"""``python -m bench [--quick] [--only NAME[,NAME...]]``: the sandbox's load benchmarks.

Starts the sandbox in its production configuration (``unlimcall-sandbox serve``: API,
in-process arq worker, embedded Redis, SQLite; per-request log lines OFF) and a reference
app (bare Litestar endpoints answering constant bodies of the same sizes, same server
settings), drives both with ``wrk``, runs the call-lifecycle and webhook-delivery
benchmarks, prints a table and writes ``bench/results.json``.

NAMEs: http (= me, balance, cdrs100, cdrs1000, oauth, calls, paced), lifecycle, delivery,
fairness, bulk; and with ``UNLIMCALL_TEST_DATABASE_URL`` set (PostgreSQL, plus Redis at
``UNLIMCALL_TEST_REDIS_URL``, see ``bench.pg``): pg (= pg_http, pg_lifecycle, pg_delivery),
pg_http (= pg_me, pg_balance, pg_cdrs100, pg_calls, each compared with ``serve``'s figure of
the same run, which is measured too). ``--only pg`` runs the whole PostgreSQL section.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import bulk, delivery, endpoints, fairness, lifecycle, pg, wrk
from bench.report import evaluate, print_tables
from bench.servers import ROOT, Processes

RESULTS = Path(__file__).resolve().parent / "results.json"
PG_HTTP = {f"pg_{k}" for k in endpoints.SCALE_OUT_KEYS}
PG_NAMES = {*PG_HTTP, "pg_lifecycle", "pg_delivery"}
GROUPS = {
    "http": set(endpoints.KEYS),
    "lifecycle": {"lifecycle"},
    "delivery": {"delivery"},
    "fairness": {"fairness"},
    "bulk": {"bulk"},
    "pg": PG_NAMES,
    "pg_http": PG_HTTP,
}
NAMES = {*endpoints.KEYS, "lifecycle", "delivery", "fairness", "bulk", *PG_NAMES}
WORKER_COUNTS = (1, 2)
"""Worker processes the PostgreSQL lifecycle and delivery benchmarks run with."""


def _parse_only(values: list[str]) -> set[str]:
    chosen = _named(values)
    if chosen & PG_NAMES and not pg.configured():
        raise SystemExit(f"bench: the PostgreSQL benchmarks need {pg.PG_URL_ENV}")
    # A PostgreSQL figure is compared with serve's of the same run: measure both.
    return chosen | {name.removeprefix("pg_") for name in chosen & PG_HTTP}


def _named(values: list[str]) -> set[str]:
    if not values:
        return NAMES if pg.configured() else NAMES - PG_NAMES
    chosen: set[str] = set()
    for value in values:
        for name in filter(None, (v.strip() for v in value.split(","))):
            if name in GROUPS:
                chosen |= GROUPS[name]
            elif name in NAMES:
                chosen.add(name)
            else:
                known = ", ".join(sorted({*GROUPS, *NAMES}))
                raise SystemExit(f"bench: unknown benchmark {name!r}; known: {known}")
    return chosen


def busy_cpu_pct(seconds: float = 2.0) -> float:
    """How busy the machine is before we start (all CPUs, from /proc/stat): other work
    running beside the benchmark makes every number below unreliable."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    spent = total1 - total0
    return round(100 * (1 - (idle1 - idle0) / spent), 1) if spent else 0.0


def _meta(quick: bool, only: set[str]) -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "server", "workers", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "only": sorted(only),
        "commit": commit,
        "uncommitted_server_changes": [line.strip() for line in dirty if line.strip()],
        "pythonpath": os.environ.get("PYTHONPATH", ""),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "wrk": wrk_version.splitlines()[0] if wrk_version else "",
        "sandbox": "unlimcall-sandbox serve (API + in-process worker + embedded Redis + "
        "SQLite), UNLIMCALL_LOG_REQUESTS=false",
        "scale_out": "pg_*: unlimcall-sandbox api --workers 2 + 1 or 2 `worker` processes, "
        "PostgreSQL (a fresh database per deployment) + Redis, UNLIMCALL_LOG_REQUESTS=false",
        "server": "uvicorn, loop=uvloop, http=httptools, 1 process (sandbox and reference)",
        "pacing": "wrk + Lua delay(): per-thread send slots 1/rate apart (LuaJIT ffi clock)",
    }


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, 100k CDRs, fewer calls")
    parser.add_argument("--only", action="append", default=[], help="benchmarks to run")
    parser.add_argument("--keep-data", action="store_true", help="keep data dirs and logs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also sample the sandbox with py-spy (needs py-spy; an extra pass per endpoint); "
        "raw stacks go to DIR",
    )
    args = parser.parse_args(argv)
    only = _parse_only(args.only)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    try:
        wrk.ensure_wrk()
    except (wrk.WrkMissing, subprocess.CalledProcessError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    quick = args.quick
    cfg = (
        endpoints.Config(duration=3, warmup=1, paced_duration=3, cdr_rows=100_000)
        if quick
        else endpoints.Config()
    )
    results: dict[str, Any] = {"meta": _meta(quick, only)}
    busy = busy_cpu_pct()
    results["meta"]["busy_cpu_before_pct"] = busy
    if busy > 15:
        print(
            f"bench: WARNING: the machine is already {busy}% busy; other load skews every "
            "number (stop it, or compare only within this run)",
            flush=True,
        )
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    sections: list[tuple[str, Callable[[Processes], dict[str, Any]]]] = []
    if only & set(endpoints.KEYS):
        sections.append(("http", lambda p: endpoints.run(p, cfg, only, args.profile)))
    if "lifecycle" in only:
        sections.append(
            (
                "lifecycle",
                lambda p: lifecycle.run(
                    p,
                    n_calls=500 if quick else 2000,
                    timeout=60 if quick else 180,
                    profile_dir=args.profile,
                ),
            )
        )
    if "delivery" in only:
        sections.append(
            (
                "delivery",
                lambda p: delivery.run(
                    p,
                    hooks=10 if quick else 20,
                    burst_events=50 if quick else 150,
                    steady_seconds=4.0 if quick else 10.0,
                    steady_deliveries_per_s=50.0,
                    profile_dir=args.profile,
                ),
            )
        )
    if "fairness" in only:
        sections.append(
            (
                "fairness",
                lambda p: fairness.run(
                    p, a_hooks=200 if quick else 1000, seconds=12.0 if quick else 25.0
                ),
            )
        )
    if "bulk" in only:
        sections.append(("bulk", lambda p: bulk.run(p, count=100_000 if quick else 1_000_000)))
    if only & PG_HTTP:
        keys = [name.removeprefix("pg_") for name in only & PG_HTTP]
        sections.append(
            (
                "pg_http",
                lambda p: endpoints.run_scale_out(
                    p, cfg, keys, pg.ScaleOut(workers=1), args.profile
                ),
            )
        )
    if "pg_lifecycle" in only:
        sections.append(
            (
                "pg_lifecycle",
                lambda p: {
                    str(n): lifecycle.run(
                        p,
                        n_calls=500 if quick else 2000,
                        timeout=60 if quick else 180,
                        profile_dir=args.profile,
                        start=pg.ScaleOut(workers=n),
                        label=f"pg-lifecycle-{n}w",
                    )
                    for n in WORKER_COUNTS
                },
            )
        )
    if "pg_delivery" in only:
        sections.append(
            (
                "pg_delivery",
                lambda p: {
                    str(n): delivery.run(
                        p,
                        hooks=10 if quick else 20,
                        burst_events=50 if quick else 150,
                        steady_seconds=4.0 if quick else 10.0,
                        steady_deliveries_per_s=50.0,
                        profile_dir=args.profile,
                        start=pg.ScaleOut(workers=n),
                        label=f"pg-delivery-{n}w",
                    )
                    for n in WORKER_COUNTS
                },
            )
        )
    began = time.perf_counter()
    failed = False
    with Processes(keep_data=args.keep_data) as procs:
        for name, section in sections:
            try:
                results[name] = section(procs)
            except Exception as exc:  # report it, go on with the other benchmarks
                failed = True
                traceback.print_exc()
                print(f"bench: {name} benchmark failed: {exc}", file=sys.stderr, flush=True)
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            finally:
                procs.close()  # every process of this section, before the next one
    pg_http = results.get("pg_http")
    if pg_http and "error" not in pg_http:
        endpoints.compare(pg_http, results.get("http"))
    results["meta"]["total_seconds"] = round(time.perf_counter() - began, 1)
    results["targets"] = evaluate(results)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_tables(results)
    print(f"bench: wrote {args.out} ({results['meta']['total_seconds']} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
