"""Hot-path statements in a write transaction, without SQLAlchemy's per-execution cost.

On SQLite the write transaction is a synchronous connection on the event loop thread
(``server.db.engine``); there, ``run`` executes a statement's SQL on the raw ``sqlite3``
connection, compiled once per statement (and per set of parameter names), and returns
plain rows with attribute access. Elsewhere (PostgreSQL) it is ``conn.execute``.

Statements given to ``run`` must be module-level constants built with ``bindparam``s (the
compiled SQL is cached by the statement object). On SQLite, values come back as the
``sqlite3`` module gives them: booleans as 0/1, which the callers only test for truth.
Bind parameters in WHERE clauses of INSERT/UPDATE statements are named ``w_*`` so that
they never collide with column names (those become the SET / VALUES columns).
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import MultipleResultsFound, NoResultFound
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ValuesBase

from unlimcall_sandbox.server.db.engine import SyncConnection

_DIALECT = sqlite_dialect.dialect(paramstyle="named")

Params = Mapping[str, Any]


class Rows:
    """What callers use of a result: ``first``, ``one``, ``scalar_one``, ``scalars``,
    ``all`` and ``rowcount``."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def all(self) -> Sequence[Any]:
        return self._rows

    def first(self) -> Any | None:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if not self._rows:
            raise NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [r[0] for r in self._rows]


class _Compiled:
    __slots__ = ("built_in", "row_type", "sql", "statement")

    def __init__(self, statement: Any, sql: str, built_in: dict[str, Any]) -> None:
        self.statement = statement  # held: the cache key is its id()
        self.sql = sql
        self.built_in = built_in
        self.row_type: Any = None


_CACHE: dict[tuple[int, tuple[str, ...]], _Compiled] = {}


def compiled(statement: Any, names: tuple[str, ...] = ()) -> _Compiled:
    """``statement``'s SQLite SQL for parameters ``names``, compiled once (also used by
    ``unlimcall_sandbox.server.db.fastread``)."""
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
    return [make(r) for r in cursor.fetchall()]


async def run(
    conn: AsyncConnection, statement: Any, params: Params | Sequence[Params] | None = None
) -> Rows:
    """Execute ``statement`` in the write transaction ``conn``: one parameter mapping, or
    a non-empty list of them (executemany; no rows returned)."""
    if isinstance(conn, SyncConnection):
        raw = conn.driver_connection
        if params is None or isinstance(params, Mapping):
            values = params or {}
            entry = compiled(statement, tuple(values))
            cursor = raw.execute(entry.sql, {**entry.built_in, **values})
            return Rows(_rows(entry, cursor), cursor.rowcount)
        entry = compiled(statement, tuple(params[0]))
        merged = [{**entry.built_in, **p} for p in params] if entry.built_in else params
        cursor = raw.executemany(entry.sql, merged)
        return Rows([], cursor.rowcount)
    result = await conn.execute(statement, params)
    return Rows(result.all() if result.returns_rows else [], result.rowcount)
