"""The async engine and the two transaction shapes every caller uses.

``read(engine)`` is a plain transaction. ``write(engine)`` takes the write lock up front
(``BEGIN IMMEDIATE`` on SQLite) so that concurrent writers from several processes queue
on ``busy_timeout`` instead of failing with "database is locked" when a reader upgrades.
Within one process, SQLite writers also queue on an asyncio lock first, then use a
connection of their own: SQLite has one writer at a time anyway, its busy handler is not
fair (under a burst of hundreds of writers some starved past any timeout), and a writer
holding the lock must never wait for a pooled connection behind a crowd of readers.
Writers that queue while a SQLite transaction is open share it (group commit, see
``_Writer``); ``write`` returns only once the work is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Dialect, Engine, RootTransaction, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from unlimcall_sandbox.server.settings import Settings

T = TypeVar("T")
_IMMEDIATE = "sandbox_immediate"
# The SQLite write connection waits at most this long inside SQLite for another process's
# lock (the event loop is blocked meanwhile), then yields to the loop and tries again, for
# up to WRITE_LOCK_PATIENCE seconds in all.
WRITE_BUSY_MS = 20
WRITE_LOCK_PATIENCE = 30.0


class SyncConnection:
    """What services use of an ``AsyncConnection`` (``execute``, ``dialect``,
    ``run_sync``), over a synchronous SQLAlchemy connection. SQLite writes run on the event
    loop thread through it: a statement costs tens of microseconds there, against ~600 µs
    through the async adapter's thread hops — and writers are serialised anyway."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # The sqlite3 connection under it, for ``server.db.fastsql``'s raw statements (the
        # transaction is the same: SQLAlchemy issued its BEGIN on this connection).
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        self.driver_connection = driver

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        if parameters is None:
            return self._conn.execute(statement)
        return self._conn.execute(statement, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self._conn, *args)


class _Group:
    """One SQLite transaction shared by the writers that come while it is open (group
    commit): each writer's work is a savepoint in it; one COMMIT makes them all durable."""

    __slots__ = ("committed", "tx")

    def __init__(self, tx: RootTransaction) -> None:
        self.tx = tx
        self.committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def fail(self, exc: BaseException) -> None:
        if not self.committed.done():
            self.committed.set_exception(exc)
            self.committed.exception()  # retrieved: a group nobody waits on logs nothing


class _Writer:
    """The in-process write path of a SQLite database: a FIFO lock and one synchronous
    connection (SQLite has one writer at a time anyway). Writers that queue while a
    transaction is open join it, each in a savepoint of its own, and are told of the
    single COMMIT that ends it: BEGIN IMMEDIATE and COMMIT were a third of the CPU of
    ``POST /v1/calls``."""

    def __init__(self, url: str) -> None:
        self.lock = asyncio.Lock()
        self.engine = create_engine(url.replace("+aiosqlite", ""), poolclass=StaticPool)
        _configure_sqlite(self.engine, busy_ms=WRITE_BUSY_MS)
        self.engine = self.engine.execution_options(**{_IMMEDIATE: True})
        # One connection, kept open between transactions (opening one per transaction
        # showed up in profiles); replaced after any error that may have spoilt it.
        self._conn: Connection | None = None
        self._wrapped: SyncConnection | None = None
        self.group: _Group | None = None
        self._committer: asyncio.Task[None] | None = None

    async def open_group(self) -> tuple[_Group, SyncConnection]:
        """The open group, or a new one (BEGIN IMMEDIATE). Call with the lock held."""
        if self.group is None:
            sync_conn, _ = self.connection()
            try:
                tx = await _begin_immediate(sync_conn)
            except BaseException:
                self.close()
                raise
            self.group = _Group(tx)
            if self._committer is None or self._committer.done():
                self._committer = asyncio.ensure_future(self._commit_soon())
        assert self._wrapped is not None
        return self.group, self._wrapped

    async def _commit_soon(self) -> None:
        await asyncio.sleep(0)  # the writers of this loop iteration join first
        async with self.lock:  # FIFO: writers already queued join before the commit
            group, self.group = self.group, None
            if group is None:
                return
            try:
                group.tx.commit()
            except BaseException as exc:
                self.close()  # the transaction is gone with its connection
                group.fail(exc)
                return
            group.committed.set_result(None)

    async def drain(self) -> None:
        """Let the open group, if any, commit (at shutdown)."""
        committer = self._committer
        if committer is not None and not committer.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(committer)

    def fail_group(self, exc: BaseException) -> None:
        """A savepoint could not be undone: roll the whole group back, now."""
        group, self.group = self.group, None
        if group is not None:
            with contextlib.suppress(Exception):
                group.tx.rollback()
            group.fail(exc)
        self.close()

    def connection(self) -> tuple[Connection, SyncConnection]:
        if self._conn is None or self._wrapped is None or self._conn.invalidated:
            self.close()
            self._conn = self.engine.connect()
            self._wrapped = SyncConnection(self._conn)
        return self._conn, self._wrapped

    def close(self) -> None:
        conn, self._conn, self._wrapped = self._conn, None, None
        if conn is not None:
            # Closing a broken connection: nothing is left to save.
            with contextlib.suppress(Exception):
                conn.close()


_WRITERS: weakref.WeakKeyDictionary[AsyncEngine, _Writer] = weakref.WeakKeyDictionary()


def make_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, pool_size=8, max_overflow=8)
        _configure_sqlite(engine.sync_engine, busy_ms=15000)
        _WRITERS[engine] = _Writer(url)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _configure_sqlite(sync_engine: Engine, busy_ms: int) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to shape.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
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
        await writer.drain()
        writer.close()
        writer.engine.dispose()
    await engine.dispose()


@asynccontextmanager
async def read(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        yield conn


@asynccontextmanager
async def write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    writer = _WRITERS.get(engine)
    if writer is None:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**{_IMMEDIATE: True})
            async with conn.begin():
                yield conn
        return
    async with writer.lock:
        group, wrapped = await writer.open_group()
        raw = wrapped.driver_connection
        raw.execute("SAVEPOINT unit")
        try:
            # Duck-typed: services use execute, dialect and run_sync only.
            yield cast(AsyncConnection, wrapped)
        except BaseException:
            try:
                raw.execute("ROLLBACK TO unit")
                raw.execute("RELEASE unit")
            except BaseException as exc:
                writer.fail_group(exc)
            raise
        try:
            raw.execute("RELEASE unit")
        except BaseException as exc:
            writer.fail_group(exc)
            raise
    # Told only once the group's COMMIT is done: what follows a write (answering, jobs)
    # never runs for work that is not durable. A failed COMMIT raises here.
    await asyncio.shield(group.committed)


async def _begin_immediate(conn: Connection) -> RootTransaction:
    """BEGIN IMMEDIATE, waiting for another process's write lock without blocking the
    event loop for more than WRITE_BUSY_MS at a time."""
    deadline = time.monotonic() + WRITE_LOCK_PATIENCE
    pause = 0.002
    while True:
        try:
            return conn.begin()
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            conn.rollback()
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
