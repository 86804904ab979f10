"""The SQLite adapter of the database port (``db.port``).

``write()`` takes the write lock up front (``BEGIN IMMEDIATE``) so that concurrent
writers from several processes queue on ``busy_timeout`` instead of failing with "database
is locked" when a reader upgrades. Within one process, writers queue on an asyncio lock
first, then use one synchronous connection on the event loop thread: SQLite has one writer
at a time anyway, its busy handler is not fair (under a burst of hundreds of writers some
starved past any timeout), and a statement costs tens of microseconds there against
~600 µs through the async adapter's thread hops. Writers that queue while a transaction is
open share it (group commit, see ``_Writer``); ``write`` returns only once the work is
committed.

Hot-path statements (``Conn.run``) execute on the raw ``sqlite3`` connection, compiled once
per statement (and per set of parameter names). Hot point reads (``all``) run on one
read-only ``sqlite3`` connection per process: in WAL mode a reader never waits for a
writer, and a point query costs a few microseconds. Booleans come back as ``bool``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    RootTransaction,
    create_engine,
    event,
)
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import ValuesBase

from unlimcall_sandbox.server.db.port import (
    AnyResult,
    Conn,
    Params,
    Rows,
    WriteGuard,
    boolean_columns,
    with_booleans,
)
from unlimcall_sandbox.server.db.postgres import AsyncConn

T = TypeVar("T")
log = logging.getLogger("unlimcall.db")
_IMMEDIATE = "sandbox_immediate"
# The write connection waits at most this long inside SQLite for another process's lock
# (the event loop is blocked meanwhile), then yields to the loop and tries again, for up
# to WRITE_LOCK_PATIENCE seconds in all.
WRITE_BUSY_MS = 20
WRITE_LOCK_PATIENCE = 30.0
_DIALECT = sqlite_dialect.dialect(paramstyle="named")
# The WAL is copied back into the database file by a thread of its own (``_Checkpointer``)
# this often; the writer does it itself, on the event loop, only once the WAL holds more
# than WRITER_AUTOCHECKPOINT pages (the checkpointer fell behind or is gone).
CHECKPOINT_EVERY = 0.25
WRITER_AUTOCHECKPOINT = 10_000


# -- prepared statements -------------------------------------------------------------------


class _Compiled:
    __slots__ = ("booleans", "built_in", "row_type", "sql", "statement")

    def __init__(self, statement: Any, sql: str, built_in: dict[str, Any]) -> None:
        self.statement = statement  # held: the cache key is its id()
        self.sql = sql
        self.built_in = built_in
        self.row_type: Any = None
        self.booleans = boolean_columns(statement)


_CACHE: dict[tuple[int, tuple[str, ...]], _Compiled] = {}


def compiled(statement: Any, names: tuple[str, ...] = ()) -> _Compiled:
    """``statement``'s SQLite SQL for parameters ``names``, compiled once."""
    key = (id(statement), names)
    entry = _CACHE.get(key)
    if entry is None or entry.statement is not statement:
        if isinstance(statement, ValuesBase):
            sql = statement.compile(dialect=_DIALECT, column_keys=list(names))
        else:
            sql = statement.compile(dialect=_DIALECT)
        built_in = {k: v for k, v in sql.params.items() if k not in names}
        entry = _CACHE[key] = _Compiled(statement, str(sql), built_in)
    return entry


def _rows(entry: _Compiled, cursor: sqlite3.Cursor) -> list[Any]:
    if cursor.description is None:
        return []
    if entry.row_type is None:
        entry.row_type = namedtuple("Row", [d[0] for d in cursor.description], rename=True)  # type: ignore[misc]
    make = entry.row_type._make
    rows = [make(r) for r in cursor.fetchall()]
    return with_booleans(rows, entry.booleans) if entry.booleans else rows


class WriteConn:
    """A write transaction on the synchronous SQLAlchemy connection (``execute``) and the
    raw ``sqlite3`` connection under it (``run``): the transaction is the same, SQLAlchemy
    issued its BEGIN on that connection."""

    __slots__ = ("_conn", "raw")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        self.raw = driver

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> AnyResult:
        if parameters is None:
            return self._conn.execute(statement)
        return self._conn.execute(statement, parameters)

    async def run(self, statement: Any, params: Params | Sequence[Params] | None = None) -> Rows:
        raw = self.raw
        if params is None or isinstance(params, Mapping):
            values = params or {}
            entry = compiled(statement, tuple(values))
            built_in = entry.built_in
            cursor = raw.execute(entry.sql, {**built_in, **values} if built_in else values)
            if cursor.description is None:  # INSERT, UPDATE, DELETE without RETURNING
                return Rows((), cursor.rowcount)
            return Rows(_rows(entry, cursor), cursor.rowcount)
        entry = compiled(statement, tuple(params[0]))
        merged = [{**entry.built_in, **p} for p in params] if entry.built_in else params
        cursor = raw.executemany(entry.sql, merged)
        return Rows([], cursor.rowcount)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self._conn, *args)


# -- the writer ----------------------------------------------------------------------------


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
    """The in-process write path: a FIFO lock and one synchronous connection. Writers that
    queue while a transaction is open join it, each in a savepoint of its own, and are told
    of the single COMMIT that ends it: BEGIN IMMEDIATE and COMMIT were a third of the CPU
    of ``POST /v1/calls``."""

    def __init__(self, url: str) -> None:
        self.lock = asyncio.Lock()
        self.engine = create_engine(url.replace("+aiosqlite", ""), poolclass=StaticPool)
        _configure(self.engine, busy_ms=WRITE_BUSY_MS, autocheckpoint=WRITER_AUTOCHECKPOINT)
        self.engine = self.engine.execution_options(**{_IMMEDIATE: True})
        # One connection, kept open between transactions (opening one per transaction
        # showed up in profiles); replaced after any error that may have spoilt it.
        self._conn: Connection | None = None
        self._wrapped: WriteConn | None = None
        self.group: _Group | None = None
        self._committer: asyncio.Task[None] | None = None

    async def open_group(self) -> tuple[_Group, WriteConn]:
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

    def connection(self) -> tuple[Connection, WriteConn]:
        if self._conn is None or self._wrapped is None or self._conn.invalidated:
            self.close()
            self._conn = self.engine.connect()
            self._wrapped = WriteConn(self._conn)
        return self._conn, self._wrapped

    def close(self) -> None:
        conn, self._conn, self._wrapped = self._conn, None, None
        if conn is not None:
            # Closing a broken connection: nothing is left to save.
            with contextlib.suppress(Exception):
                conn.close()


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


def _configure(sync_engine: Engine, busy_ms: int, autocheckpoint: int | None = None) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to shape.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        if autocheckpoint is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class _Checkpointer:
    """Copies the WAL back into the database file (``PRAGMA wal_checkpoint(PASSIVE)``)
    every CHECKPOINT_EVERY seconds, on a connection and a thread of its own: SQLite runs a
    checkpoint without the GIL, so it takes the other core instead of the event loop.
    Left to the writer (SQLite's default, every 1,000 pages) it ran inside a COMMIT on the
    loop: 40 % of the cost of committing ``POST /v1/calls``. A passive checkpoint never
    blocks a writer or a reader; the WAL is reused from its start by the next write once it
    has all been copied back."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stop = threading.Event()
        self.last: tuple[int, int, int] | None = None
        """The last checkpoint's (busy, pages in the WAL, pages copied back)."""
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(CHECKPOINT_EVERY):
                try:
                    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the next round tries again
                    log.warning("WAL checkpoint failed: %s", exc)
                    continue
                self.last = (int(row[0]), int(row[1]), int(row[2]))
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class _Write:
    """One ``SqliteDatabase.write()``: the writer's lock, a savepoint in the open group (or
    a new group), and — once the block is done — the group's COMMIT waited for: what follows
    a write (answering, jobs) never runs for work that is not durable, and a failed COMMIT
    raises here. A class rather than a generator-based context manager: every request that
    writes passes here."""

    __slots__ = ("_conn", "_group", "_guard", "_task", "_writer")

    def __init__(self, writer: _Writer, guard: WriteGuard) -> None:
        self._writer = writer
        self._guard = guard

    async def __aenter__(self) -> WriteConn:
        writer = self._writer
        self._task = self._guard.enter()
        try:
            await writer.lock.acquire()
            try:
                self._group, self._conn = await writer.open_group()
                self._conn.raw.execute("SAVEPOINT unit")
            except BaseException:
                writer.lock.release()
                raise
        except BaseException:
            self._guard.leave(self._task)
            raise
        return self._conn

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        writer = self._writer
        raw = self._conn.raw
        try:
            if exc_type is not None:
                try:
                    raw.execute("ROLLBACK TO unit")
                    raw.execute("RELEASE unit")
                except BaseException as undo_failed:
                    writer.fail_group(undo_failed)
                return  # the block's exception goes on
            try:
                raw.execute("RELEASE unit")
            except BaseException as release_failed:
                writer.fail_group(release_failed)
                raise
        finally:
            writer.lock.release()
            self._guard.leave(self._task)
        await asyncio.shield(self._group.committed)


# -- the adapter ---------------------------------------------------------------------------


class SqliteDatabase:
    """The database port on a SQLite file (see the module docstring)."""

    def __init__(self, url: str, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._engine = create_async_engine(url, pool_size=8, max_overflow=8)
        _configure(self._engine.sync_engine, busy_ms=15000)
        self.writer = _Writer(url)
        self._guard = WriteGuard()
        database = self._engine.url.database
        self._path = Path(database) if database else None
        self._reader: sqlite3.Connection | None = None
        self.checkpointer: _Checkpointer | None = None
        """Started by the first write (on a file; in memory there is no WAL)."""

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        async with self._engine.begin() as conn:
            yield AsyncConn(conn)

    def write(self) -> AbstractAsyncContextManager[Conn]:
        if self.checkpointer is None and self._path is not None:
            self.checkpointer = _Checkpointer(self._path)
        return _Write(self.writer, self._guard)

    def _read_only(self) -> sqlite3.Connection:
        if self._reader is None:
            assert self._path is not None
            conn = sqlite3.connect(
                f"file:{self._path}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA busy_timeout = 5000")
            self._reader = conn
        return self._reader

    async def all(self, statement: Any, params: Params) -> Sequence[Sequence[Any]]:
        if self._path is None:  # in memory: the read-only connection would see another db
            async with self.read() as conn:
                return (await conn.execute(statement, params)).all()
        entry = compiled(statement)  # SQL text and the values bound at build time (a LIMIT)
        rows = self._read_only().execute(entry.sql, {**entry.built_in, **params}).fetchall()
        return with_booleans(rows, entry.booleans) if entry.booleans else rows

    async def one_or_none(self, statement: Any, params: Params) -> Sequence[Any] | None:
        rows = await self.all(statement, params)
        return rows[0] if rows else None

    async def dispose(self) -> None:
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
            self.checkpointer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        await self.writer.drain()
        self.writer.close()
        self.writer.engine.dispose()
        await self._engine.dispose()
