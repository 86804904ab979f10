"""Ids and counters. Ids the contract leaves free are derived from the seed and a number
(or from their cause), so the same seed and the same requests give the same ids; secrets
and tokens stay truly random.

Two kinds of numbers:

- ``next_id``: one number of a named sequence (calls, hooks, fired events, demo runs).
  On PostgreSQL a database sequence (migration 0009; ``CACHE 1``, so every connection of
  every process draws the next number and one process sees 1, 2, 3 ... as on SQLite):
  ``nextval`` locks no row, so originations of all processes never queue on one another.
  On SQLite a ``counters`` row in the write transaction (one writer anyway).
- ``next_counter``: a block of ``n`` consecutive numbers (CDR ids of a generation job),
  or a lock that serialises one kind of rare write (inbox posts): the ``counters`` row
  upserted in the transaction, on both backends. Never on a per-request hot path.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy import Sequence, bindparam, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import counters

_NAMESPACE = uuid.UUID("6b1c3f0e-8d57-4d3a-9a8f-2f0c5e7d9b11")
_NAMESPACE_BYTES = _NAMESPACE.bytes

SEQUENCES = ("call", "hook", "event", "demo")
"""The names ``next_id`` draws from (a PostgreSQL sequence ``id_seq_<name>`` each)."""


def derived_uuid(seed: int, *parts: object) -> str:
    """``str(uuid.uuid5(_NAMESPACE, "seed:part:..."))``, without the ``UUID`` object (a
    call's id is derived on every placement: the object cost 4x the hash)."""
    name = ":".join([str(seed), *map(str, parts)]).encode()
    h = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50  # version 5
    h[8] = (h[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


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
_NEXTVAL = {name: select(Sequence(f"id_seq_{name}").next_value()) for name in SEQUENCES}
_RESTART = {name: text(f"ALTER SEQUENCE id_seq_{name} RESTART") for name in SEQUENCES}


async def next_counter(conn: Conn, name: str, n: int = 1) -> int:
    """Reserve ``n`` consecutive values of counter ``name`` (a ``counters`` row, locked
    until the transaction ends); returns the last one reserved (so the block is
    ``last-n+1 .. last``)."""
    stmt = _UPSERT[conn.dialect.name]
    return int((await conn.run(stmt, {"w_name": name, "w_n": n})).scalar_one())


async def next_id(conn: Conn, name: str) -> int:
    """The next number of sequence ``name`` (one of ``SEQUENCES``), from 1."""
    if conn.dialect.name == "postgresql":
        return int((await conn.run(_NEXTVAL[name])).scalar_one())
    return await next_counter(conn, name)


async def restart(conn: Conn) -> None:
    """Every sequence starts again from 1 (a reset, with the ``counters`` rows deleted)."""
    if conn.dialect.name == "postgresql":
        for name in SEQUENCES:
            await conn.execute(_RESTART[name])
