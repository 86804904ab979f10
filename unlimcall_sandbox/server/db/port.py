"""The one way into the database, whatever the backend.

A ``Database`` opens transactions: ``read()`` and ``write()`` yield a ``Conn``; ``all`` and
``one_or_none`` answer the hot point reads outside any transaction. Services are typed
against ``Conn`` and ``Database`` only; how a backend gets its speed stays in its adapter
(``db.sqlite``: one synchronous writer with group commit, prepared statements on the raw
``sqlite3`` connection, a read-only connection for the hot reads; ``db.postgres``: the
async engine). On both, booleans come back as ``bool`` and a ``write()`` opened inside
another one by the same task raises ``ReentrantWrite``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, Protocol, TypeVar

from sqlalchemy import Boolean, CursorResult, Dialect
from sqlalchemy.exc import MultipleResultsFound, NoResultFound
from sqlalchemy.ext.asyncio import AsyncEngine

Params = Mapping[str, Any]
T = TypeVar("T")
AnyResult = CursorResult[*tuple[Any, ...]]
"""What ``Conn.execute`` returns: rows of any shape."""


class ReentrantWrite(RuntimeError):
    """A ``write()`` was opened while the same task already holds one: it would deadlock
    on SQLite (one writer) and silently be a second, independent transaction elsewhere.
    Pass the open ``Conn`` down instead."""

    def __init__(self) -> None:
        super().__init__(
            "write() opened inside another write() of the same task: "
            "pass the open connection down instead of opening a second transaction"
        )


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


class Conn(Protocol):
    """One open transaction."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, statement: Any, parameters: Any = None) -> AnyResult:
        """Any SQLAlchemy Core statement, as ``AsyncConnection.execute``."""
        ...

    async def run(self, statement: Any, params: Params | Sequence[Params] | None = None) -> Rows:
        """A hot-path statement: a module-level constant built with ``bindparam``s (it is
        prepared once, by identity), with one parameter mapping or a non-empty list of
        them (executemany; no rows returned). Bind parameters in the WHERE clause of an
        INSERT/UPDATE are named ``w_*`` so that they never collide with column names."""
        ...

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(sync_connection, *args)`` in this transaction (migrations)."""
        ...


class Database(Protocol):
    """A process's database: the only way services and jobs reach it."""

    @property
    def engine(self) -> AsyncEngine:
        """For migrations and the start-up lock only."""
        ...

    def read(self) -> AbstractAsyncContextManager[Conn]:
        """A read transaction."""
        ...

    def write(self) -> AbstractAsyncContextManager[Conn]:
        """A write transaction: returns once the work is committed; raises
        ``ReentrantWrite`` inside another ``write()`` of the same task."""
        ...

    async def all(self, statement: Any, params: Params) -> Sequence[Sequence[Any]]:
        """Rows of a hot point read (a module-level statement with named bind
        parameters), outside any transaction."""
        ...

    async def one_or_none(self, statement: Any, params: Params) -> Sequence[Any] | None: ...

    async def dispose(self) -> None: ...


def boolean_columns(statement: Any) -> tuple[int, ...]:
    """Positions of the Boolean columns among what ``statement`` returns (its SELECT list
    or RETURNING clause): the raw ``sqlite3`` driver gives them as 0/1."""
    columns = getattr(statement, "exported_columns", None)
    if columns is None:
        return ()
    return tuple(i for i, c in enumerate(columns) if isinstance(getattr(c, "type", None), Boolean))


def with_booleans(rows: list[Any], positions: tuple[int, ...]) -> list[Any]:
    """``rows`` (tuples or named tuples) with the values at ``positions`` as bool."""
    if not positions or not rows:
        return rows
    make = getattr(rows[0], "_make", tuple)
    out = []
    for row in rows:
        values = list(row)
        for i in positions:
            if values[i] is not None:
                values[i] = bool(values[i])
        out.append(make(values))
    return out


class WriteGuard:
    """The tasks holding a write of one database: ``ReentrantWrite`` for a second one by
    the same task. Tasks started inside a write are other tasks: they queue as usual.
    (Tasks, not a context variable: Litestar closes a dependency's transaction in another
    context than the one that opened it.)"""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def enter(self) -> asyncio.Task[Any] | None:
        """The current task, now holding a write (``ReentrantWrite`` if it already held
        one); pass it to ``leave`` when the write ends."""
        task = asyncio.current_task()
        if task is not None:
            if task in self._tasks:
                raise ReentrantWrite()
            self._tasks.add(task)
        return task

    def leave(self, task: asyncio.Task[Any] | None) -> None:
        self._tasks.discard(task)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        task = self.enter()
        try:
            yield
        finally:
            self.leave(task)
