"""The PostgreSQL adapter of the database port (``db.port``).

Transactions (``read``/``write``) run on SQLAlchemy's async engine (asyncpg): a write takes
no lock up front (row locks and the conditional updates in the services do the rest); the
asyncpg dialect prepares each statement once per connection (its prepared-statement cache,
``PREPARED_STATEMENTS`` entries). Ids come from sequences (``ids.next_id``), so no
transaction updates a row that every other one needs.

Hot point reads (``all``: token lookups, ``/balance``, ``/cdrs``, ``/agents``, fault rules)
skip the engine: one statement on a connection of a small asyncpg pool of their own, in
autocommit — one round trip, where a read transaction costs three (BEGIN, the statement,
ROLLBACK) plus SQLAlchemy's per-execution work. Each statement's SQL is compiled once
(by identity, like the SQLite adapter's) and asyncpg prepares it once per connection; the
CDR window reads each row's stored contract JSON as text and the service joins it as is.

Pools are small, per process: ``POOL_SIZE`` (+ ``POOL_OVERFLOW``) engine connections for
transactions — an API process's concurrent requests, or a worker's jobs, queue for them
(more connections only queue more backends on the same row locks: with 10 + 10 an
account's placements had 25 backends waiting on its row, and PostgreSQL's lock manager
cost ~3 times the CPU per placement it does with 4 + 4). The read pool opens on first
use (a worker that never serves a hot read never opens it) and keeps at most
``READ_POOL_SIZE`` connections: the reads are short, so a few connections serve a whole
API process, and PostgreSQL on a small machine gains nothing from more backends than
cores.

``AsyncConn`` is also what the SQLite adapter's read transactions are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from unlimcall_sandbox.server.db.port import AnyResult, Conn, Params, Rows, WriteGuard

T = TypeVar("T")
POOL_SIZE = 4
POOL_OVERFLOW = 4
READ_POOL_SIZE = 4
PREPARED_STATEMENTS = 256


class _Compiled:
    """One statement's asyncpg SQL (``$n`` parameters) and how to order its values."""

    __slots__ = ("built_in", "names", "sql", "statement")

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        self.statement = statement  # held: the cache key is its id()
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.built_in = {k: v for k, v in compiled.params.items() if v is not None}

    def args(self, params: Params) -> list[Any]:
        built_in = self.built_in
        return [params[n] if n in params else built_in[n] for n in self.names]


_CACHE: dict[int, _Compiled] = {}


def compiled(statement: Any, dialect: Dialect) -> _Compiled:
    """``statement``'s asyncpg SQL, compiled once (every engine's dialect is asyncpg's)."""
    entry = _CACHE.get(id(statement))
    if entry is None or entry.statement is not statement:
        entry = _CACHE[id(statement)] = _Compiled(statement, dialect)
    return entry


class AsyncConn:
    """A transaction on an ``AsyncConnection``."""

    __slots__ = ("_conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> AnyResult:
        result: AnyResult = await self._conn.execute(statement, parameters)
        return result

    async def run(self, statement: Any, params: Params | Sequence[Params] | None = None) -> Rows:
        result = await self._conn.execute(statement, params)
        return Rows(result.all() if result.returns_rows else [], result.rowcount)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._conn.run_sync(fn, *args)


async def _keep(_conn: Any) -> None:
    """A read connection goes back to its pool as it is: single statements in autocommit
    leave no state to reset (asyncpg's default reset is one more round trip per read)."""


class PostgresDatabase:
    """The database port on PostgreSQL."""

    def __init__(self, url: str) -> None:
        self._engine = create_async_engine(
            url,
            pool_size=POOL_SIZE,
            max_overflow=POOL_OVERFLOW,
            pool_pre_ping=False,
            connect_args={"prepared_statement_cache_size": PREPARED_STATEMENTS},
        )
        self._guard = WriteGuard()
        self._reads: Any = None  # the asyncpg pool of the hot reads, opened on first use
        self._opening: asyncio.Lock | None = None

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        async with self._engine.begin() as conn:
            yield AsyncConn(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        with self._guard():
            async with self._engine.begin() as conn:
                yield AsyncConn(conn)

    async def _read_pool(self) -> Any:
        if self._reads is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._reads is None:
                    import asyncpg

                    cargs, cparams = self._engine.dialect.create_connect_args(self._engine.url)
                    for key in ("prepared_statement_cache_size", "prepared_statement_name_func"):
                        cparams.pop(key, None)
                    self._reads = await asyncpg.create_pool(
                        *cargs,
                        **cparams,
                        min_size=1,
                        max_size=READ_POOL_SIZE,
                        statement_cache_size=PREPARED_STATEMENTS,
                        reset=_keep,
                    )
        return self._reads

    async def all(self, statement: Any, params: Params) -> Sequence[Sequence[Any]]:
        entry = compiled(statement, self._engine.dialect)
        pool = self._reads if self._reads is not None else await self._read_pool()
        async with pool.acquire() as conn:
            rows: Sequence[Sequence[Any]] = await conn.fetch(entry.sql, *entry.args(params))
        return rows

    async def one_or_none(self, statement: Any, params: Params) -> Sequence[Any] | None:
        rows = await self.all(statement, params)
        return rows[0] if rows else None

    async def dispose(self) -> None:
        reads, self._reads = self._reads, None
        if reads is not None:
            await reads.close()
        await self._engine.dispose()
