"""Fixtures: one sandbox per backend for the session (tests make their own accounts, as
integrators do), fresh ones for tests that need a clean or restarted instance.

The PostgreSQL backend runs when ``UNLIMCALL_TEST_DATABASE_URL`` is set and is skipped,
with a banner in the summary, when it is not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import hypothesis  # noqa: F401 - imported early: a lazy import at summary time trips CPython 3.11.7
import pytest
import uvloop

from tests.support.receiver import Receiver
from tests.support.sandbox import (
    FLUSHED_REDIS_URLS,
    PG_URL,
    REDIS_FLUSH_ALLOWED,
    REDIS_URL,
    REDIS_URL_GIVEN,
    Sandbox,
    sandbox_for,
)
from unlimcall_sandbox.server.redis_embed import EmbeddedRedisError, find_redis_server

BACKENDS = ["sqlite", "postgres"]


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """uvloop, as the sandbox runs in production (``serve`` picks it). On the default loop,
    a client and a server sharing one loop meet a 40 ms delayed-ACK floor per request."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgres" and not PG_URL:
        pytest.skip("PostgreSQL run skipped: set UNLIMCALL_TEST_DATABASE_URL to run it")
    return name


@pytest.fixture(scope="session")
async def sandbox(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sandbox]:
    tmp = tmp_path_factory.mktemp(f"sandbox-{backend}")
    async with sandbox_for(backend, tmp, hold_redis=True) as sb:
        yield sb


@pytest.fixture
def fresh(backend: str, tmp_path: Path) -> Any:
    """A factory for private sandboxes: ``async with fresh(**settings) as sb``."""

    counter = iter(range(1_000_000))

    def make(**overrides: Any) -> Any:
        data_dir = tmp_path / f"sandbox-{next(counter)}"
        data_dir.mkdir()
        return sandbox_for(backend, data_dir, **overrides)

    return make


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    try:
        yield r
    finally:
        await r.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not PG_URL:
        terminalreporter.write_sep(
            "!", "PostgreSQL backend NOT tested: UNLIMCALL_TEST_DATABASE_URL is unset", red=True
        )
    for line in redis_summary():
        terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    if REDIS_URL_GIVEN and not REDIS_FLUSH_ALLOWED:
        raise pytest.UsageError(
            "UNLIMCALL_TEST_REDIS_URL is set, but the suite runs FLUSHDB on databases 1-15 of "
            "that Redis (or the one its URL names): set UNLIMCALL_TEST_REDIS_FLUSH=1 if it may, "
            "or unset UNLIMCALL_TEST_REDIS_URL to use only the embedded Redis"
        )


def redis_summary() -> list[str]:
    """Which Redis the run used, and what it flushed."""
    try:
        server = find_redis_server()
        embedded = f"a private {server.path} (from {server.source}) per sandbox"
    except EmbeddedRedisError as exc:
        embedded = f"unavailable: {exc}"
    lines = [f"Redis: embedded — {embedded}"]
    if not REDIS_URL:
        lines[0] += "; no shared Redis used (UNLIMCALL_TEST_REDIS_URL unset)"
        return lines
    shared = _without_password(REDIS_URL)
    if not FLUSHED_REDIS_URLS:
        lines.append(f"Redis: shared {shared} allowed but not used; nothing flushed")
        return lines
    dbs = ", ".join(url.rpartition("/")[2] for url in FLUSHED_REDIS_URLS)
    lines.append(
        f"Redis: shared {shared} for the PostgreSQL half — FLUSHDB run on database(s) {dbs}"
        " (allowed by UNLIMCALL_TEST_REDIS_FLUSH=1)"
    )
    return lines


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
