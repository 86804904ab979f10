"""The async engine and the two transaction shapes every caller uses.

``read(engine)`` is a plain transaction. ``write(engine)`` takes the write lock up front
(``BEGIN IMMEDIATE`` on SQLite) so that concurrent writers from several processes queue
on ``busy_timeout`` instead of failing with "database is locked" when a reader upgrades.
Within one process, SQLite writers also queue on an asyncio lock first, then use a
connection of their own: SQLite has one writer at a time anyway, its busy handler is not
fair (under a burst of hundreds of writers some starved past any timeout), and a writer
holding the lock must never wait for a pooled connection behind a crowd of readers.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from server.settings import Settings

_IMMEDIATE = "sandbox_immediate"


class _Writer:
    """The in-process write path of a SQLite engine: a FIFO lock and one connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.lock = asyncio.Lock()
        self.engine = engine


_WRITERS: weakref.WeakKeyDictionary[AsyncEngine, _Writer] = weakref.WeakKeyDictionary()


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=8, max_overflow=8)
        _configure_sqlite(engine)
        writer = create_async_engine(url, pool_size=1, max_overflow=0)
        _configure_sqlite(writer)
        _WRITERS[engine] = _Writer(writer)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to shape.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


async def dispose(engine: AsyncEngine) -> None:
    writer = _WRITERS.pop(engine, None)
    if writer is not None:
        await writer.engine.dispose()
    await engine.dispose()


@asynccontextmanager
async def read(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        yield conn


@asynccontextmanager
async def write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with AsyncExitStack() as stack:
        writer = _WRITERS.get(engine)
        if writer is not None:
            await stack.enter_async_context(writer.lock)
            engine = writer.engine
        conn = await stack.enter_async_context(engine.connect())
        conn = await conn.execution_options(**{_IMMEDIATE: True})
        await stack.enter_async_context(conn.begin())
        yield conn
