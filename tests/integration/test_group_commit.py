"""SQLite group commit (``server.db.engine.write``): writers that queue while a transaction
is open share it, each in a savepoint, and return only once the shared COMMIT is done."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import text

from unlimcall_sandbox.server.db import engine as engine_module
from unlimcall_sandbox.server.db import sqlite as sqlite_module
from unlimcall_sandbox.server.db.engine import dispose, make_engine, write
from unlimcall_sandbox.server.settings import Settings


@pytest.fixture
async def sqlite_engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(Settings(data_dir=tmp_path, admin_token="x" * 32))
    async with write(engine) as conn:
        await conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)"))
    yield engine, tmp_path / "sandbox.db"
    await dispose(engine)


def committed_rows(path: Path) -> list[tuple[int, str]]:
    """What another connection sees: only committed data. (``with`` on a sqlite3
    connection only ends a transaction; ``closing`` closes it.)"""
    with closing(sqlite3.connect(path)) as other:
        return sorted(other.execute("SELECT k, v FROM t").fetchall())


async def test_writers_share_a_commit_and_return_after_it(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    engine, path = sqlite_engine
    commits = 0
    writer = engine_module.database_of(engine).writer  # type: ignore[attr-defined]
    seen_after: dict[int, list[tuple[int, str]]] = {}

    async def one(k: int) -> None:
        async with write(engine) as conn:
            await conn.execute(text("INSERT INTO t VALUES (:k, :v)"), {"k": k, "v": f"v{k}"})
        seen_after[k] = committed_rows(path)  # durable by the time write() returns

    original = writer.open_group

    async def counting() -> object:
        nonlocal commits
        before = writer.group
        result = await original()
        if before is None:
            commits += 1
        return result

    writer.open_group = counting  # type: ignore[method-assign]
    await asyncio.gather(*(one(k) for k in range(10)))
    assert commits < 10  # at least some writers shared a transaction
    assert committed_rows(path) == [(k, f"v{k}") for k in range(10)]
    assert all((k, f"v{k}") in rows for k, rows in seen_after.items())


async def test_a_failing_writer_rolls_back_alone(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    engine, path = sqlite_engine

    async def ok(k: int) -> None:
        async with write(engine) as conn:
            await conn.execute(text("INSERT INTO t VALUES (:k, 'ok')"), {"k": k})

    async def bad() -> None:
        async with write(engine) as conn:
            await conn.execute(text("INSERT INTO t VALUES (100, 'bad')"))
            raise RuntimeError("handler failed")

    results = await asyncio.gather(ok(1), bad(), ok(2), return_exceptions=True)
    assert isinstance(results[1], RuntimeError)
    assert committed_rows(path) == [(1, "ok"), (2, "ok")]


async def test_a_failed_commit_fails_every_writer_of_the_group(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    engine, path = sqlite_engine
    writer = engine_module.database_of(engine).writer  # type: ignore[attr-defined]

    async def one(k: int) -> None:
        async with write(engine) as conn:
            await conn.execute(text("INSERT INTO t VALUES (:k, 'x')"), {"k": k})
            group = writer.group
            assert group is not None
            if not isinstance(group.tx, FailingCommit):
                group.tx = FailingCommit(group.tx)  # type: ignore[assignment]

    results = await asyncio.gather(one(1), one(2), return_exceptions=True)
    assert all(isinstance(r, sqlite3.OperationalError) for r in results), results
    assert committed_rows(path) == []
    await one_more(engine)  # the writer recovers with a fresh connection
    assert committed_rows(path) == [(3, "after")]


class FailingCommit:
    """The group's real transaction, whose COMMIT fails as a full disk would make it."""

    def __init__(self, tx: object) -> None:
        self.tx = tx

    def commit(self) -> None:
        self.tx.rollback()  # type: ignore[attr-defined]
        raise sqlite3.OperationalError("disk I/O error")

    def rollback(self) -> None:
        self.tx.rollback()  # type: ignore[attr-defined]


async def one_more(engine: object) -> None:
    async with write(engine) as conn:  # type: ignore[arg-type]
        await conn.execute(text("INSERT INTO t VALUES (3, 'after')"))


async def test_the_wal_is_copied_back_by_the_checkpointer_not_the_writer(sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    """The writer leaves checkpoints (SQLite's default: inside the COMMIT that passes 1,000
    pages, on the event loop) to the checkpointer's thread, which copies the WAL back."""
    engine, path = sqlite_engine
    db = engine_module.database_of(engine)  # type: ignore[attr-defined]
    async with write(engine) as conn:  # ~1,500 pages of 4 KiB in one commit
        await conn.execute(
            text("INSERT INTO t VALUES (:k, :v)"), [{"k": k, "v": "x" * 4000} for k in range(1_500)]
        )
        raw = conn.raw  # type: ignore[attr-defined]
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone() == (
            sqlite_module.WRITER_AUTOCHECKPOINT,
        )
    checkpointer = db.checkpointer
    assert checkpointer is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        last = checkpointer.last
        if last is not None and last[0] == 0 and last[1] >= 1_500 and last[2] == last[1]:
            break
        assert loop.time() < deadline, f"the WAL was not copied back: {last}"
        await asyncio.sleep(0.05)
    with closing(sqlite3.connect(path)) as other:
        assert other.execute("SELECT count(*) FROM t").fetchone() == (1_500,)
