"""The scale-out deployment the PostgreSQL benchmarks run (``python -m bench --only pg``,
when ``UNLIMCALL_TEST_DATABASE_URL`` is set): ``unlimcall-sandbox api --workers 2`` and
one or two ``unlimcall-sandbox worker`` processes on PostgreSQL + Redis.

Each deployment gets a fresh database (``CREATE DATABASE bench_<random>`` on the server of
``UNLIMCALL_TEST_DATABASE_URL``, dropped once its processes are stopped), so the tests'
data is never touched, and one Redis database (``UNLIMCALL_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379``; database ``UNLIMCALL_BENCH_REDIS_DB``, default 0, which the
tests never use — they take 1..15), flushed before and after (that database only). Both
must be on this machine: the benchmarks connect to nothing else, and every sandbox process
runs with ``UNLIMCALL_WEBHOOK_EGRESS=loopback``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.servers import ROOT, Processes, Sandbox
from unlimcall_sandbox.testing.launch import LaunchedSandbox, launch_sandbox

PG_URL_ENV = "UNLIMCALL_TEST_DATABASE_URL"
REDIS_URL_ENV = "UNLIMCALL_TEST_REDIS_URL"
REDIS_DB_ENV = "UNLIMCALL_BENCH_REDIS_DB"
DEFAULT_REDIS = "redis://127.0.0.1:6379"
API_PROCESSES = 2
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def configured() -> bool:
    return bool(os.environ.get(PG_URL_ENV))


def _loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host not in _LOOPBACK:
        raise SystemExit(f"bench: {url!r} is not on this machine; the benchmarks use loopback only")
    return url


def _dsn(url: str) -> str:
    """asyncpg's form of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def fresh_database(procs: Processes) -> tuple[str, str]:
    """A new empty database on the configured server; dropped when ``procs`` closes.
    Returns its SQLAlchemy URL and its name."""
    url = _loopback(os.environ[PG_URL_ENV])
    if not url.startswith("postgresql+asyncpg://"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    name = f"bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(url, f'CREATE DATABASE "{name}"'))
    procs.cleanups.append(
        lambda: asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    )
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}", name


def _flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def fresh_redis(procs: Processes) -> str:
    """The bench's Redis database, flushed now and when ``procs`` closes."""
    base = _loopback(os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS)
    parts = urlsplit(base)
    url = parts._replace(path=f"/{int(os.environ.get(REDIS_DB_ENV, '0'))}").geturl()
    _flush(url)
    procs.cleanups.append(lambda: _flush(url))
    return url


def _process_ticks(pid: int) -> int:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _wait_workers(workers: list[LaunchedSandbox], redis_url: str, timeout: float = 90.0) -> None:
    """Until the workers poll their queue: arq's health-check key is written on a worker's
    first poll, and a worker done starting (imports, migrations) sits idle between polls.
    (A worker serves no HTTP and need not log anything at start.)"""
    import redis

    from unlimcall_sandbox.server.job_queue import QUEUE

    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(redis_url)
    try:
        while not client.exists(f"{QUEUE}:health-check"):
            for w in workers:
                if not w.alive:
                    raise RuntimeError(f"worker exited:\n{w.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no worker polling after {timeout:g}s")
            time.sleep(0.05)
    finally:
        client.close()
    for w in workers:
        while True:
            before = _process_ticks(w.pid)
            time.sleep(0.3)
            if not w.alive:
                raise RuntimeError(f"worker exited:\n{w.log_tail()}")
            if _process_ticks(w.pid) - before <= 3 or time.monotonic() > deadline:
                break


@dataclass
class ScaleOut:
    """Starts ``api --workers 2`` + ``workers`` worker processes on a fresh database; a
    callable with ``start_sandbox``'s shape, so every benchmark can run on it."""

    workers: int = 1
    api_processes: int = API_PROCESSES
    database: str = ""
    """The name of the database of the last deployment started."""
    worker_procs: tuple[LaunchedSandbox, ...] = ()

    def __call__(self, procs: Processes, name: str, *, time_scale: float = 1.0) -> Sandbox:
        db_url, self.database = fresh_database(procs)
        redis_url = fresh_redis(procs)
        data_dir = procs.tempdir(f"pg-{name}")
        env = {
            "UNLIMCALL_DATABASE_URL": db_url,
            "UNLIMCALL_REDIS_URL": redis_url,
            "UNLIMCALL_TIME_SCALE": f"{time_scale:g}",
            "UNLIMCALL_SEED": "7",
            "UNLIMCALL_WEBHOOK_EGRESS": "loopback",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        api = procs.adopt(
            launch_sandbox(
                env,
                command="api",
                args=["--workers", str(self.api_processes)],
                data_dir=data_dir,
                cwd=ROOT,
                log_path=data_dir / f"api-{name}.log",
            )
        )
        workers = []
        for i in range(self.workers):
            worker = procs.adopt(
                launch_sandbox(
                    env,
                    command="worker",
                    data_dir=data_dir,
                    admin_token=api.admin_token,
                    cwd=ROOT,
                    log_path=data_dir / f"worker{i + 1}-{name}.log",
                    ready=False,
                )
            )
            workers.append(worker)
        _wait_workers(workers, redis_url)
        self.worker_procs = tuple(workers)
        return Sandbox(api, api.admin_token, data_dir, time_scale)


def cpu_ticks(sessions: set[int], database: str) -> int:
    """CPU ticks (user+system, 100 a second) of the processes in ``sessions`` and of the
    PostgreSQL backends serving ``database`` (matched by their process title)."""
    total = 0
    needle = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            fields = raw[raw.rfind(")") + 2 :].split()
            mine = int(fields[3]) in sessions
            if not mine and database and raw[raw.find("(") + 1 : raw.rfind(")")] == "postgres":
                mine = needle in (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if mine:
            total += int(fields[11]) + int(fields[12])
    return total
