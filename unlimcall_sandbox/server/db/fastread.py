"""Hot-path reads: ``/balance``, ``/cdrs``, ``/agents``, token lookups.

On SQLite they run synchronously on the event loop thread, on one read-only ``sqlite3``
connection per process: in WAL mode a reader never waits for a writer, and a point query
costs a few microseconds there against ~600 µs through SQLAlchemy's async adapter (a
thread hop per statement plus BEGIN and ROLLBACK). The statements are SQLAlchemy Core,
compiled once. On PostgreSQL they go through the async engine as everything else does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from unlimcall_sandbox.server.db.fastsql import compiled


class FastReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._path: Path | None = None
        if engine.dialect.name == "sqlite" and engine.url.database:
            self._path = Path(engine.url.database)
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            assert self._path is not None
            conn = sqlite3.connect(
                f"file:{self._path}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA busy_timeout = 5000")
            self._conn = conn
        return self._conn

    async def all(self, stmt: Any, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        """Rows of ``stmt`` (a module-level statement with named bind parameters)."""
        if self._path is not None:
            entry = compiled(stmt)  # SQL text and the values bound at build time (a LIMIT)
            return self._connection().execute(entry.sql, {**entry.built_in, **params}).fetchall()
        async with self._engine.connect() as conn:
            return (await conn.execute(stmt, params)).all()

    async def one_or_none(self, stmt: Any, params: dict[str, Any]) -> Sequence[Any] | None:
        rows = await self.all(stmt, params)
        return rows[0] if rows else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
