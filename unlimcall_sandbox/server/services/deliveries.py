"""Webhook deliveries: the SQL of the delivery pipeline (claim an attempt, record it),
redelivery, fast-forward, and the delivery log.

The walk of one delivery (claim → sign → send → record → schedule the retry) is
``unlimcall_sandbox.workers.delivery``; this module is where its statements live.

Claiming is one conditional UPDATE that takes a lease (wall-clock seconds) on a due,
pending delivery and bumps its attempt counter; only the claimant sends. Recording the
outcome clears the lease and schedules the next attempt in the same transaction as the
attempt row, so a crash at any point loses nothing: an unrecorded attempt's lease runs out
and the sweep sends it again with the same delivery id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, or_, select, update

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import deliveries, delivery_attempts, events, hooks
from unlimcall_sandbox.server.errors import InvalidInput, NotFound
from unlimcall_sandbox.server.job_queue import JobSpec
from unlimcall_sandbox.server.services.events import delivery_job

DELIVERED = "delivered"
FAILED = "failed"
PENDING = "pending"
CANCELLED = "cancelled"
STATUSES = (PENDING, DELIVERED, FAILED, CANCELLED)

# An attempt's recorded outcome → the status it leaves its delivery in.
STATUS_AFTER: Final = {
    "delivered": DELIVERED,
    "permanent": FAILED,
    "exhausted": FAILED,
    "retry": PENDING,
}


@dataclass(frozen=True, slots=True)
class Claim:
    """A leased, due attempt: everything needed to send it."""

    delivery_id: str
    hook_id: str
    attempt: int
    account_id: int
    event_type: str
    target_url: str
    secret: str
    body: bytes
    first_attempt_at: float
    claimed_at: float
    """The attempt's sandbox time: when it was due, or the claim's time if that is earlier
    (a worker may take it up to its tolerance early). An attempt that a clock advance made
    overdue is stamped with its planned time, as call steps are, so the retry schedule
    keeps its planned gaps and every retry due in the window runs, in order."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt as stored (``delivery_attempts``), and where it leaves its delivery."""

    delivery_id: str
    number: int
    attempted_at: float
    recorded_at: float
    """Wall time it was stored: what the dashboard's live stream looks for new attempts by
    (``attempted_at`` is sandbox time, and planned time when an advance made it overdue)."""
    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None
    outcome: str
    """delivered | permanent | retry | exhausted (a retry the window no longer allows)"""
    next_attempt_at: float | None
    """Sandbox time of the next attempt (outcome ``retry``), else None."""


# Hot-path statements (``Conn.run``, prepared once on SQLite): built once, bound per attempt.
_CLAIMABLE = (
    select(
        deliveries.c.attempts,
        deliveries.c.hook_id,
        deliveries.c.account_id,
        deliveries.c.event_type,
        deliveries.c.first_attempt_at,
        deliveries.c.next_attempt_at,
        hooks.c.target_url,
        hooks.c.secret,
        hooks.c.active,
        events.c.payload,
    )
    .join(hooks, hooks.c.id == deliveries.c.hook_id)
    .join(events, events.c.id == deliveries.c.event_id)
    .where(
        deliveries.c.id == bindparam("w_id"),
        deliveries.c.status == PENDING,
        deliveries.c.next_attempt_at <= bindparam("w_due"),
        or_(
            deliveries.c.lease_until.is_(None),
            deliveries.c.lease_until < bindparam("w_real_now"),
        ),
    )
)
_CANCEL = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("w_id"), deliveries.c.status == PENDING)
    .values(status=CANCELLED, next_attempt_at=None, lease_until=None)
)
_CLAIM = update(deliveries).where(
    deliveries.c.id == bindparam("w_id"),
    deliveries.c.status == PENDING,
    deliveries.c.attempts == bindparam("w_attempts"),
)
_INSERT_ATTEMPT = delivery_attempts.insert()
_SETTLE = update(deliveries).where(deliveries.c.id == bindparam("w_id"))


_FIRST_ATTEMPTS = (
    select(deliveries.c.id)
    .where(
        deliveries.c.event_id == bindparam("w_event"),
        deliveries.c.status == PENDING,
        deliveries.c.attempts == 0,
    )
    .order_by(deliveries.c.id)
)


async def first_attempts(conn: Conn, event_id: str) -> list[str]:
    """The deliveries of ``event_id`` that were never attempted."""
    return [str(i) for i in (await conn.run(_FIRST_ATTEMPTS, {"w_event": event_id})).scalars()]


async def claim(
    conn: Conn,
    delivery_id: str,
    now: float,
    real_now: float,
    lease_seconds: float,
    tolerance: float = 0.0,
) -> Claim | None:
    """Take the due attempt of ``delivery_id`` (due by sandbox time ``now``, leased until
    wall time ``real_now + lease_seconds``), or None when it is not due, finished, leased
    by another worker, or its hook was deleted (then it is cancelled)."""
    params = {"w_id": delivery_id, "w_due": now + tolerance, "w_real_now": real_now}
    row = (await conn.run(_CLAIMABLE, params)).first()
    if row is None:
        return None
    if not row.active:
        await conn.run(_CANCEL, {"w_id": delivery_id})
        return None
    at = min(row.next_attempt_at, now)
    first = row.first_attempt_at if row.first_attempt_at is not None else at
    result = await conn.run(
        _CLAIM,
        {
            "w_id": delivery_id,
            "w_attempts": row.attempts,
            "attempts": row.attempts + 1,
            "lease_until": real_now + lease_seconds,
            "first_attempt_at": first,
        },
    )
    if result.rowcount != 1:
        return None
    return Claim(
        delivery_id=delivery_id,
        hook_id=row.hook_id,
        attempt=row.attempts + 1,
        account_id=int(row.account_id),
        event_type=row.event_type,
        target_url=row.target_url,
        secret=row.secret,
        body=row.payload.encode("utf-8"),
        first_attempt_at=first,
        claimed_at=at,
    )


async def record(conn: Conn, attempt: Attempt) -> None:
    """Store the attempt and move its delivery on (status, next attempt, lease cleared)."""
    await conn.run(
        _INSERT_ATTEMPT,
        {
            "delivery_id": attempt.delivery_id,
            "number": attempt.number,
            "attempted_at": attempt.attempted_at,
            "recorded_at": attempt.recorded_at,
            "status_code": attempt.status_code,
            "latency_ms": attempt.latency_ms,
            "error": attempt.error,
            "response_body": attempt.response_body,
            "next_attempt_at": attempt.next_attempt_at,
            "outcome": attempt.outcome,
        },
    )
    await conn.run(
        _SETTLE,
        {
            "w_id": attempt.delivery_id,
            "status": STATUS_AFTER[attempt.outcome],
            "next_attempt_at": attempt.next_attempt_at,
            "lease_until": None,
            "last_status_code": attempt.status_code,
        },
    )


async def due(conn: Conn, now: float, real_now: float, limit: int = 1000) -> list[Any]:
    """Pending deliveries due by sandbox time ``now`` with no lease live at wall time
    ``real_now``: what the sweep re-enqueues."""
    stmt = (
        select(deliveries.c.id, deliveries.c.attempts)
        .where(
            deliveries.c.status == PENDING,
            deliveries.c.next_attempt_at <= now,
            or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < real_now),
        )
        .order_by(deliveries.c.next_attempt_at)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


async def redeliver(conn: Conn, delivery_id: str, now: float) -> JobSpec:
    """Send a delivery again: pending, due now, with a fresh 24 h window."""
    row = (
        await conn.execute(
            select(deliveries.c.attempts, hooks.c.active)
            .join(hooks, hooks.c.id == deliveries.c.hook_id)
            .where(deliveries.c.id == delivery_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"No delivery {delivery_id!r}.")
    if not row.active:
        raise InvalidInput("The hook of this delivery is deleted; nothing to send to.")
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(status=PENDING, next_attempt_at=now, first_attempt_at=None, lease_until=None)
    )
    return delivery_job(delivery_id, row.attempts + 1)


async def listing(
    conn: Conn,
    *,
    hook_id: str | None,
    status: str | None,
    event: str | None,
    account_id: int | None,
    limit: int,
    delivery_id: str | None = None,
) -> list[dict[str, Any]]:
    conds = []
    if delivery_id is not None:
        conds.append(deliveries.c.id == delivery_id)
    if hook_id is not None:
        conds.append(deliveries.c.hook_id == hook_id)
    if status is not None:
        conds.append(deliveries.c.status == status)
    if event is not None:
        conds.append(deliveries.c.event_type == event)
    if account_id is not None:
        conds.append(deliveries.c.account_id == account_id)
    stmt = (
        select(deliveries, events.c.payload, hooks.c.target_url)
        .join(events, events.c.id == deliveries.c.event_id)
        .join(hooks, hooks.c.id == deliveries.c.hook_id)
        .where(*conds)
        .order_by(deliveries.c.created_at.desc(), deliveries.c.id)
        .limit(limit)
    )
    rows = (await conn.execute(stmt)).all()
    ids = [r.id for r in rows]
    attempts: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        att_rows = await conn.execute(
            select(delivery_attempts)
            .where(delivery_attempts.c.delivery_id.in_(ids))
            .order_by(delivery_attempts.c.delivery_id, delivery_attempts.c.number)
        )
        for a in att_rows:
            attempts[a.delivery_id].append(
                {
                    "number": a.number,
                    "attemptedAt": iso(a.attempted_at),
                    "statusCode": a.status_code,
                    "latencyMs": a.latency_ms,
                    "error": a.error,
                    "responseBody": a.response_body,
                    "outcome": a.outcome,
                    "nextAttemptAt": None if a.next_attempt_at is None else iso(a.next_attempt_at),
                }
            )
    return [
        {
            "id": r.id,
            "hookId": r.hook_id,
            "eventId": r.event_id,
            "event": r.event_type,
            "customerId": str(r.account_id),
            "targetUrl": r.target_url,
            "status": r.status,
            "attempts": attempts[r.id],
            "createdAt": iso(r.created_at),
            "nextAttemptAt": None if r.next_attempt_at is None else iso(r.next_attempt_at),
            "payload": json.loads(r.payload),
        }
        for r in rows
    ]


_OWNERS = select(deliveries.c.id, deliveries.c.account_id, deliveries.c.hook_id).where(
    deliveries.c.id.in_(bindparam("w_ids", expanding=True))
)


async def owners(conn: Conn, delivery_ids: list[str]) -> dict[str, tuple[int, str]]:
    """Each delivery's account and hook (what the worker's fairness caps count by)."""
    if not delivery_ids:
        return {}
    rows = await conn.execute(_OWNERS, {"w_ids": delivery_ids})
    return {str(r.id): (int(r.account_id), str(r.hook_id)) for r in rows}
