"""The database port (``server.db.port``) behaves alike on both backends: a write opened
inside another write of the same task is refused with a clear error (it used to deadlock
on SQLite), booleans come back as ``bool`` from every path, and a task started inside a
write may still write once that write is over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Boolean, Column, MetaData, String, Table, bindparam, select, text, update

from tests.support.sandbox import fresh_database, make_settings
from unlimcall_sandbox.server.db.engine import open_database
from unlimcall_sandbox.server.db.port import Database, ReentrantWrite

flags = Table("flags", MetaData(), Column("id", String(8), primary_key=True), Column("on", Boolean))


@pytest.fixture
async def db(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database(backend, tmp_path) as url:
        database = open_database(make_settings(tmp_path, url, None))
        try:
            async with database.write() as conn:
                await conn.run_sync(flags.metadata.create_all)
            yield database
        finally:
            await database.dispose()


async def test_a_write_inside_a_write_is_refused_not_deadlocked(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(text("SELECT 1"))
        with pytest.raises(ReentrantWrite, match="inside another write"):
            async with db.write():
                pass  # pragma: no cover - never entered
    # The outer transaction was not spoilt, and the next write opens as usual.
    async with db.write() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1


async def test_a_task_started_inside_a_write_writes_after_it(db: Database) -> None:
    async def later() -> int:
        async with db.write() as conn:
            return int((await conn.execute(text("SELECT 2"))).scalar_one())

    async with db.write():
        task = asyncio.ensure_future(later())
    assert await task == 2


_ACTIVE = select(flags.c.on).where(flags.c.id == bindparam("w_id"))
_DISABLE = (
    update(flags)
    .where(flags.c.id == bindparam("w_id"))
    .values(on=False)
    .returning(flags.c.id, flags.c.on)
)


async def test_booleans_are_bool_on_every_path(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(flags.insert().values(id="h1", on=True))
        prepared = (await conn.run(_ACTIVE, {"w_id": "h1"})).one()
        assert prepared.on is True
        plain = (await conn.execute(_ACTIVE, {"w_id": "h1"})).one()
        assert plain.on is True
    async with db.write() as conn:
        returned = (await conn.run(_DISABLE, {"w_id": "h1"})).one()
        assert returned.on is False
    fast = await db.one_or_none(_ACTIVE, {"w_id": "h1"})
    assert fast is not None and fast[0] is False
    async with db.read() as conn:
        assert (await conn.execute(_ACTIVE, {"w_id": "h1"})).scalar_one() is False
