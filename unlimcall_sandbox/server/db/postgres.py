"""The PostgreSQL adapter of the database port (``db.port``): the async engine, with a
write transaction that takes no lock up front (row locks and the conditional updates in
the services do the rest). ``AsyncConn`` is also what the SQLite adapter's read
transactions are."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from unlimcall_sandbox.server.db.port import AnyResult, Conn, Params, Rows, WriteGuard

T = TypeVar("T")


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


class PostgresDatabase:
    """The database port on PostgreSQL."""

    def __init__(self, url: str) -> None:
        self._engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=False)
        self._guard = WriteGuard()

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

    async def all(self, statement: Any, params: Params) -> Sequence[Sequence[Any]]:
        async with self._engine.connect() as conn:
            return (await conn.execute(statement, params)).all()

    async def one_or_none(self, statement: Any, params: Params) -> Sequence[Any] | None:
        rows = await self.all(statement, params)
        return rows[0] if rows else None

    async def dispose(self) -> None:
        await self._engine.dispose()
