"""Ids and counters. Ids the contract leaves free are derived from the seed and a
database counter (or from their cause), so the same seed and the same requests give the
same ids; secrets and tokens stay truly random."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, literal_column
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import counters

_NAMESPACE = uuid.UUID("6b1c3f0e-8d57-4d3a-9a8f-2f0c5e7d9b11")


def derived_uuid(seed: int, *parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, ":".join([str(seed), *map(str, parts)])))


def _upsert(insert: Any) -> Any:
    return (
        insert(counters)
        .values(name=bindparam("w_name"), value=bindparam("w_n"))
        .on_conflict_do_update(
            index_elements=[counters.c.name],
            set_={"value": counters.c.value + literal_column("excluded.value")},
        )
        .returning(counters.c.value)
    )


_UPSERT = {"postgresql": _upsert(pg_insert), "sqlite": _upsert(sqlite_insert)}


async def next_counter(conn: Conn, name: str, n: int = 1) -> int:
    """Reserve ``n`` values of counter ``name`` atomically; returns the last one reserved
    (so the block is ``last-n+1 .. last``)."""
    stmt = _UPSERT[conn.dialect.name]
    return int((await conn.run(stmt, {"w_name": name, "w_n": n})).scalar_one())
