"""Real processes for reliability tests: the API in the test, workers as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from tests.support.sandbox import (
    ADMIN,
    Sandbox,
    fresh_database,
    fresh_redis_url,
    make_settings,
    running,
)

CLI = Path(sys.executable).parent / "unlimcall-sandbox"


@asynccontextmanager
async def api_only(backend: str, tmp: Path, **overrides: Any) -> AsyncIterator[Sandbox]:
    async with fresh_database(backend, tmp) as db_url:
        settings = make_settings(tmp, db_url, await fresh_redis_url(backend), **overrides)
        async with running(settings, worker=False) as sb:
            yield sb


@contextmanager
def worker_process(sb: Sandbox, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    s = sb.settings
    env = {
        **os.environ,
        "UNLIMCALL_DATA_DIR": str(s.data_dir),
        "UNLIMCALL_DATABASE_URL": s.effective_database_url,
        "UNLIMCALL_REDIS_URL": sb.rt.redis_url,
        "UNLIMCALL_ADMIN_TOKEN": ADMIN,
        "UNLIMCALL_TIME_SCALE": str(s.time_scale),
        "UNLIMCALL_SEED": str(s.seed),
        "UNLIMCALL_SWEEP_INTERVAL": "0.3",
        "UNLIMCALL_WEBHOOK_TIMEOUT": str(s.webhook_timeout),
        "UNLIMCALL_WEBHOOK_RETRY_BASE": str(s.webhook_retry_base),
        "UNLIMCALL_WEBHOOK_EGRESS": s.webhook_egress,
        "UNLIMCALL_WEBHOOK_ALLOW": ",".join(s.webhook_allow),
    }
    with log.open("ab") as out:
        proc = subprocess.Popen([str(CLI), "worker"], env=env, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def flush_redis(sb: Sandbox) -> None:
    client = aioredis.from_url(sb.rt.redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
