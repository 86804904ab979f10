"""The outbox: an event row per thing that happened, and a delivery row per active hook of
that account subscribed to its type — written in the caller's transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.fastsql import run
from unlimcall_sandbox.server.db.tables import deliveries, events, hooks
from unlimcall_sandbox.server.ids import derived_uuid
from unlimcall_sandbox.server.job_queue import DELIVER_EVENT, DELIVER_WEBHOOK, JobSpec

EVENT_TYPES = ("call.ended", "call.transferred", "disposition.set", "dnc.added", "lead.completed")


_INSERT_EVENT = events.insert()
_INSERT_DELIVERY = deliveries.insert()
_SUBSCRIBED = select(hooks.c.id).where(
    hooks.c.account_id == bindparam("w_account"),
    hooks.c.event == bindparam("w_event"),
    hooks.c.active.is_(True),
)


def event_job(event_id: str) -> JobSpec:
    """The job that sends the first attempt of every delivery of a new event, together."""
    return JobSpec(DELIVER_EVENT, event_id, f"evt:{event_id}")


def delivery_job(delivery_id: str, attempt: int, delay: float = 0.0) -> JobSpec:
    """The job for attempt ``attempt`` of a delivery; the id makes duplicates no-ops."""
    return JobSpec(DELIVER_WEBHOOK, delivery_id, f"dlv:{delivery_id}:{attempt}", delay)


def body_of(
    event_type: str, event_id: str, created_at: float, payload: dict[str, Any]
) -> dict[str, Any]:
    """The delivered JSON: the contract's event fields plus event, eventId, createdAt."""
    return {**payload, "event": event_type, "eventId": event_id, "createdAt": iso(created_at)}


async def emit(
    conn: AsyncConnection,
    account_id: int,
    event_type: str,
    payload: dict[str, Any],
    now: float,
    seed: int,
    *,
    event_id: str,
    call_id: str | None = None,
) -> list[JobSpec]:
    """Write the event and its deliveries; returns the jobs to enqueue after commit."""
    body = body_of(event_type, event_id, now, payload)
    await run(
        conn,
        _INSERT_EVENT,
        {
            "id": event_id,
            "account_id": account_id,
            "type": event_type,
            "call_id": call_id,
            "payload": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
            "created_at": now,
        },
    )
    hook_ids = (
        await run(conn, _SUBSCRIBED, {"w_account": account_id, "w_event": event_type})
    ).scalars()
    rows = [
        {
            "id": derived_uuid(seed, "delivery", event_id, hook_id),
            "event_id": event_id,
            "hook_id": hook_id,
            "account_id": account_id,
            "event_type": event_type,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for hook_id in hook_ids
    ]
    if rows:
        await run(conn, _INSERT_DELIVERY, rows)
    return [event_job(event_id)] if rows else []


async def for_call(conn: AsyncConnection, call_id: str) -> list[dict[str, Any]]:
    stmt = (
        select(events.c.payload)
        .where(events.c.call_id == call_id)
        .order_by(events.c.created_at, events.c.type)
    )
    out: list[dict[str, Any]] = [json.loads(p) for p in (await conn.execute(stmt)).scalars()]
    # Same timestamp: keep emission order, where call.ended always comes last.
    out.sort(key=lambda e: (e["createdAt"], e["event"] == "call.ended"))
    return out
