"""Retention: what the worker's sweep deletes once it is older than
``UNLIMCALL_RETENTION_AGE`` sandbox seconds — inbox messages, delivery attempts, finished
deliveries, events left without deliveries and ended calls. CDRs are the account's
history and stay. Deleted in small batches, one short transaction each, so the sweep
never holds the (SQLite) writer for long."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from sqlalchemy import Select, Table, delete, exists, select

from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import (
    calls,
    deliveries,
    delivery_attempts,
    events,
    inbox_messages,
)
from unlimcall_sandbox.server.services.deliveries import PENDING
from unlimcall_sandbox.server.services.inbox import InboxCaps, enforce_caps

BATCH = 1000
"""Rows deleted per transaction."""

Opener = Callable[[], AbstractAsyncContextManager[Conn]]


def _batches(cutoff: float) -> list[tuple[str, Callable[[Conn], Awaitable[int]]]]:
    def by_ids(table: Table, ids: Select[tuple[int]]) -> Callable[[Conn], Awaitable[int]]:
        async def run(conn: Conn) -> int:
            found = [r[0] for r in (await conn.execute(ids)).all()]
            if found:
                await conn.execute(delete(table).where(table.c.id.in_(found)))
            return len(found)

        return run

    return [
        (
            "inbox_messages",
            by_ids(
                inbox_messages,
                select(inbox_messages.c.id)
                .where(inbox_messages.c.received_at < cutoff)
                .limit(BATCH),
            ),
        ),
        (
            "delivery_attempts",
            by_ids(
                delivery_attempts,
                select(delivery_attempts.c.id)
                .where(delivery_attempts.c.attempted_at < cutoff)
                .limit(BATCH),
            ),
        ),
        (
            "deliveries",
            by_ids(
                deliveries,
                select(deliveries.c.id)
                .where(deliveries.c.created_at < cutoff, deliveries.c.status != PENDING)
                .limit(BATCH),
            ),
        ),
        (
            "events",
            by_ids(
                events,
                select(events.c.id)
                .where(
                    events.c.created_at < cutoff,
                    ~exists().where(deliveries.c.event_id == events.c.id),
                )
                .limit(BATCH),
            ),
        ),
        (
            "calls",
            by_ids(
                calls,
                select(calls.c.id)
                .where(calls.c.ended_at.is_not(None), calls.c.ended_at < cutoff)
                .limit(BATCH),
            ),
        ),
    ]


async def sweep(open_write: Opener, now: float, age: float, caps: InboxCaps) -> dict[str, int]:
    """Delete what is older than ``age`` sandbox seconds at ``now`` (0: nothing), and trim
    the inboxes to ``caps``; returns rows deleted per table."""
    async with open_write() as conn:
        await enforce_caps(conn, caps)
    done: dict[str, int] = {}
    if age <= 0:
        return done
    for name, batch in _batches(now - age):
        total = 0
        while True:
            async with open_write() as conn:
                n = await batch(conn)
            total += n
            if n < BATCH:
                break
        if total:
            done[name] = total
    return done
