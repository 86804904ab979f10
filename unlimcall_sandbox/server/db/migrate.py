"""Apply Alembic migrations at start, once, even when several replicas start together.

``startup_lock`` serialises the whole start-up (migrations, the clock row, the demo data)
across processes: on PostgreSQL a session advisory lock held on a connection of its own;
on SQLite each step runs in one ``BEGIN IMMEDIATE`` transaction, which does the same for
processes sharing the file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from unlimcall_sandbox.resources import directory
from unlimcall_sandbox.server.db.engine import is_sqlite, write

MIGRATIONS = directory("server", "db", "migrations")
_PG_LOCK_KEY = 0x756E6C696D  # "unlim"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Upgrade to head. Call it inside ``startup_lock``."""
    async with write(engine) as conn:
        await conn.run_sync(_upgrade)


@asynccontextmanager
async def startup_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    if is_sqlite(engine):
        yield
        return
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
        await conn.commit()
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            await conn.commit()
