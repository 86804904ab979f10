"""The outbox: an event row per thing that happened, and a delivery row per active hook of
that account subscribed to its type — written in the caller's transaction.

Also what a fired event (``POST /_sandbox/events``) holds: by default the payload the call
lifecycle writes for that event (``lifecycle_payload``; a test holds it to what a real call
emits), with the caller's ``fields`` checked against the event's schema in the contract."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import bindparam, select

from unlimcall_sandbox.resources import CONTRACT
from unlimcall_sandbox.server import lifecycle
from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import agents, deliveries, events, hooks
from unlimcall_sandbox.server.errors import InvalidInput
from unlimcall_sandbox.server.ids import derived_uuid
from unlimcall_sandbox.server.job_queue import DELIVER_EVENT, DELIVER_WEBHOOK, JobSpec
from unlimcall_sandbox.server.lifecycle import Plan

EVENT_TYPES = ("call.ended", "call.transferred", "disposition.set", "dnc.added", "lead.completed")
# Keys of every delivered body that the sandbox sets (``body_of``); never a field.
ENVELOPE = ("event", "eventId", "createdAt")


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
    conn: Conn,
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
    jobs, _ = await emit_counted(
        conn, account_id, event_type, payload, now, seed, event_id=event_id, call_id=call_id
    )
    return jobs


async def emit_counted(
    conn: Conn,
    account_id: int,
    event_type: str,
    payload: dict[str, Any],
    now: float,
    seed: int,
    *,
    event_id: str,
    call_id: str | None = None,
) -> tuple[list[JobSpec], int]:
    """``emit``, and the number of delivery rows it wrote (one job sends them all)."""
    body = body_of(event_type, event_id, now, payload)
    await conn.run(
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
        await conn.run(_SUBSCRIBED, {"w_account": account_id, "w_event": event_type})
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
        await conn.run(_INSERT_DELIVERY, rows)
    return ([event_job(event_id)] if rows else []), len(rows)


async def for_call(conn: Conn, call_id: str) -> list[dict[str, Any]]:
    stmt = (
        select(events.c.payload)
        .where(events.c.call_id == call_id)
        .order_by(events.c.created_at, events.c.type)
    )
    out: list[dict[str, Any]] = [json.loads(p) for p in (await conn.execute(stmt)).scalars()]
    # Same timestamp: keep emission order, where call.ended always comes last.
    out.sort(key=lambda e: (e["createdAt"], e["event"] == "call.ended"))
    return out


# -- what an event says: the lifecycle's payloads, for fired events ----------------------


def lifecycle_payload(
    event_type: str,
    plan: Plan,
    *,
    call_id: str,
    contact_id: str,
    phone: str,
    agent_id: object,
    billsec: int,
) -> dict[str, Any]:
    """The payload the end of a call with ``plan`` emits as ``event_type``, as
    ``services.calls`` writes it (the contract's WebhookEvent fields; CallEndedEvent adds
    four)."""
    payload: dict[str, Any] = {
        "callId": call_id,
        "contactId": contact_id,
        "phone": phone,
        "dispositionCode": lifecycle.disposition_code(plan),
        "actor": "human" if event_type == "call.transferred" else f"ai_agent:{agent_id}",
    }
    if event_type == "call.ended":
        payload.update(
            durationSec=billsec,
            hangupReason=lifecycle.hangup_reason(plan),
            sentimentLabel=plan.sentiment,
            transferInitiated=plan.scenario == lifecycle.TRANSFERRED,
        )
    return payload


# The call a fired event pretends to come from: the scenario whose lifecycle emits it, and
# the destination that forces that scenario (DESIGN.md's table), or a plain number.
_FORCING = {
    scenario: number
    for number, (outcome, scenario) in lifecycle.FORCED.items()
    if outcome == lifecycle.ANSWERED
}
_FIRED_SCENARIO = {
    "call.ended": lifecycle.NORMAL,
    "call.transferred": lifecycle.TRANSFERRED,
    "disposition.set": lifecycle.LEAD_COMPLETED,
    "dnc.added": lifecycle.DNC,
    "lead.completed": lifecycle.LEAD_COMPLETED,
}
PLAIN_NUMBER = "+14155550123"


def fired_call(event_type: str, seed: int, seq: int) -> tuple[str, Plan]:
    """The destination and plan of the call a fired ``event_type`` stands for: a plan the
    lifecycle makes for a call to that destination (seeded: same seed and sequence, same
    plan), answered, in the scenario that emits the event."""
    scenario = _FIRED_SCENARIO[event_type]
    phone = _FORCING.get(scenario, PLAIN_NUMBER)
    for attempt in range(256):
        plan = lifecycle.plan_call(seed, seq * 256 + attempt, phone)
        if plan.outcome == lifecycle.ANSWERED and plan.scenario == scenario:
            return phone, plan
    raise AssertionError(f"no answered {scenario} plan for {phone}")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Fired:
    event_id: str
    body: dict[str, Any]
    deliveries: int
    jobs: list[JobSpec]


async def fire(
    conn: Conn,
    account_id: int,
    event_type: str,
    fields: dict[str, Any],
    now: float,
    seed: int,
    seq: int,
    contact_id_of: Callable[[int, str], str],
) -> Fired:
    """Fire ``event_type`` for an account: the lifecycle's payload for it, ``fields`` on
    top (checked against the contract first). ``contact_id_of(account_id, phone)`` is the
    lifecycle's contact id."""
    if event_type not in EVENT_TYPES:
        raise InvalidInput(f"event must be one of {', '.join(EVENT_TYPES)}.")
    check_fields(event_type, fields)
    phone, plan = fired_call(event_type, seed, seq)
    phone = str(fields.get("phone", phone))
    agent = (
        await conn.execute(
            select(agents.c.id)
            .where(agents.c.account_id == account_id)
            .order_by(agents.c.provisioned.desc(), agents.c.id)
            .limit(1)
        )
    ).scalar()
    payload = lifecycle_payload(
        event_type,
        plan,
        call_id=derived_uuid(seed, "fired-call", seq),
        contact_id=contact_id_of(account_id, phone),
        phone=phone,
        agent_id=agent if agent is not None else 0,
        billsec=plan.talk_sec,
    )
    payload.update(fields)
    event_id = derived_uuid(seed, "event", "fired", seq)
    jobs, count = await emit_counted(
        conn, account_id, event_type, payload, now, seed, event_id=event_id
    )
    return Fired(event_id, body_of(event_type, event_id, now, payload), count, jobs)


# -- fields against the contract ------------------------------------------------------------

_SCHEMA_OF = {event: "WebhookEvent" for event in EVENT_TYPES} | {"call.ended": "CallEndedEvent"}
_JSON_TYPES: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


@cache
def event_properties(event_type: str) -> dict[str, tuple[str, ...]]:
    """The contract's properties of the event's schema (``allOf`` and ``$ref`` followed):
    name → the JSON types it allows."""
    document = json.loads(CONTRACT.read_bytes())
    schemas: dict[str, Any] = document["components"]["schemas"]
    found: dict[str, tuple[str, ...]] = {}

    def walk(schema: dict[str, Any]) -> None:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            walk(schemas[ref.rsplit("/", 1)[1]])
        for part in schema.get("allOf", ()):
            walk(part)
        for name, prop in schema.get("properties", {}).items():
            kind = prop.get("type")
            if kind is not None:
                found[name] = (kind,) if isinstance(kind, str) else tuple(kind)

    walk(schemas[_SCHEMA_OF[event_type]])
    return found


def _is(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    return kind == "null" and value is None


def _kind_of(value: Any) -> str:
    for kind in ("boolean", "integer", "number", "string", "object", "array", "null"):
        if _is(value, kind):
            return _JSON_TYPES[kind]
    return type(value).__name__  # pragma: no cover - JSON has no other kind


def check_fields(event_type: str, fields: dict[str, Any]) -> None:
    """400 ``invalid_input`` naming every field the event's schema in the contract refuses
    (a field the schema does not name is allowed: ``additionalProperties: true``), and the
    keys the sandbox sets itself."""
    problems = [f"fields.{key} is set by the sandbox" for key in ENVELOPE if key in fields]
    for name, kinds in event_properties(event_type).items():
        if name in fields and not any(_is(fields[name], k) for k in kinds):
            wanted = " or ".join(_JSON_TYPES.get(k, k) for k in kinds)
            problems.append(f"fields.{name} must be {wanted}, not {_kind_of(fields[name])}")
    if problems:
        raise InvalidInput(
            f"{'; '.join(problems)} ({_SCHEMA_OF[event_type]} in the contract, {event_type})."
        )
