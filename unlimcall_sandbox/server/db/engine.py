"""Opening the database: the adapter of the port (``db.port``) for the configured URL.

``open_database(settings)`` builds a ``Database`` (``db.sqlite`` or ``db.postgres``).
``read(engine)`` / ``write(engine)`` are the same transactions reached from the engine
(for code that holds the engine, e.g. migrations and the CLI); both yield the port's
``Conn``.
"""

from __future__ import annotations

import weakref
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncEngine

from unlimcall_sandbox.server.db.port import Conn, Database
from unlimcall_sandbox.server.db.postgres import PostgresDatabase
from unlimcall_sandbox.server.db.sqlite import SqliteDatabase
from unlimcall_sandbox.server.settings import Settings

_DATABASES: weakref.WeakKeyDictionary[AsyncEngine, Database] = weakref.WeakKeyDictionary()


def open_database(settings: Settings) -> Database:
    url = settings.effective_database_url
    db: Database
    if url.startswith("sqlite"):
        db = SqliteDatabase(url, settings.data_dir)
    else:
        db = PostgresDatabase(url)
    _DATABASES[db.engine] = db
    return db


def database_of(engine: AsyncEngine) -> Database:
    """The ``Database`` that opened ``engine``."""
    return _DATABASES[engine]


def make_engine(settings: Settings) -> AsyncEngine:
    return open_database(settings).engine


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


async def dispose(engine: AsyncEngine) -> None:
    db = _DATABASES.pop(engine, None)
    if db is not None:
        await db.dispose()
    else:
        await engine.dispose()


def read(engine: AsyncEngine) -> AbstractAsyncContextManager[Conn]:
    return database_of(engine).read()


def write(engine: AsyncEngine) -> AbstractAsyncContextManager[Conn]:
    return database_of(engine).write()
