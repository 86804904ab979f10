"""Calls: origination (``POST /v1/calls``) and the lifecycle step the worker runs.

A call's whole state is its row. ``step()`` moves it one transition along the declared
table with a conditional UPDATE (``WHERE state = <expected>``), so a job that runs twice,
or two workers racing, advance it once. The final step writes the CDR (unique per call),
debits the balance and writes the events, in the same transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from unlimcall_sandbox.server import lifecycle
from unlimcall_sandbox.server.clock import Clock, iso
from unlimcall_sandbox.server.db.fastsql import run
from unlimcall_sandbox.server.db.tables import accounts, agents, calls
from unlimcall_sandbox.server.errors import (
    AccountNotProvisioned,
    AiAgentNotFound,
    AiAgentNotProvisioned,
    DialerRequired,
    EngineNotConfigured,
    InvalidInput,
    NotFound,
    OriginateFailed,
)
from unlimcall_sandbox.server.http import Tx
from unlimcall_sandbox.server.ids import derived_uuid, next_counter
from unlimcall_sandbox.server.job_queue import SIMULATE_CALL, JobSpec
from unlimcall_sandbox.server.lifecycle import Plan
from unlimcall_sandbox.server.phone import is_e164
from unlimcall_sandbox.server.rating import RateTable, price_cents
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import cdrs as cdr_service
from unlimcall_sandbox.server.services import events as event_service
from unlimcall_sandbox.server.structs import CallQueued


def _validate(body: Any) -> tuple[str, str, str | None]:
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object.")
    agent_id = body.get("aiAgentId")
    to_number = body.get("toNumber")
    if not isinstance(agent_id, str) or not agent_id:
        raise InvalidInput("aiAgentId is required and must be a non-empty string.")
    if not isinstance(to_number, str) or not to_number:
        raise InvalidInput("toNumber is required and must be a string.")
    if not is_e164(to_number):
        raise InvalidInput("toNumber must be an E.164 number such as +14155551234.")
    # Optional means "may be absent", not "may be null": the contract types them.
    from_number = body.get("fromNumber")
    if "fromNumber" in body and (not isinstance(from_number, str) or not is_e164(from_number)):
        raise InvalidInput("fromNumber must be an E.164 number such as +14155550100.")
    if "metadata" in body and not isinstance(body["metadata"], dict):
        raise InvalidInput("metadata must be a JSON object.")
    return agent_id, to_number, from_number


# Hot-path statements (``unlimcall_sandbox.server.db.fastsql``): built once, bound per call.
_ACCOUNT = select(accounts).where(accounts.c.id == bindparam("w_account"))
_INSERT_CALL = calls.insert()
_CALL = select(calls).where(calls.c.id == bindparam("w_id"))
_STEP = update(calls).where(calls.c.id == bindparam("w_id"), calls.c.state == bindparam("w_state"))
_AGENT = select(agents.c.caller_id, agents.c.sip_username, agents.c.did).where(
    agents.c.id == bindparam("w_id")
)
_CURRENCY = select(accounts.c.currency).where(accounts.c.id == bindparam("w_id"))
_DEBIT = (
    update(accounts)
    .where(accounts.c.id == bindparam("w_id"))
    .values(balance_e4=accounts.c.balance_e4 - bindparam("w_e4"))
)


def job_for(call_id: str, state: str, delay: float) -> JobSpec:
    """The job that advances ``call_id`` out of ``state``; its id makes duplicates no-ops."""
    return JobSpec(SIMULATE_CALL, call_id, f"call:{call_id}:{state}", delay)


async def originate(tx: Tx, account_id: int, body: Any) -> CallQueued:
    agent_id, to_number, from_number = _validate(body)
    conn, rt = tx.conn, tx.rt
    account = (await run(conn, _ACCOUNT, {"w_account": account_id})).one()
    if not account.engine_configured:
        raise EngineNotConfigured()
    if not account.provisioned:
        raise AccountNotProvisioned()
    if not account.dialer_enabled:
        raise DialerRequired()
    agent = await account_service.get_agent_for(conn, account_id, agent_id)
    if agent is None:
        raise AiAgentNotFound()
    if not agent.provisioned:
        raise AiAgentNotProvisioned()
    if account_service.is_blocked(account):
        raise OriginateFailed("Upstream rejected the originate: the account is blocked (balance).")
    if to_number == lifecycle.REJECT_NUMBER:
        raise OriginateFailed("Upstream rejected the originate.")
    seq = await next_counter(conn, "call")
    call_id = derived_uuid(rt.settings.seed, "call", seq)
    plan = lifecycle.plan_call(rt.settings.seed, seq, to_number)
    now = rt.clock.now()
    _, wait = lifecycle.next_state(lifecycle.QUEUED, plan) or ("", 0)
    await run(
        conn,
        _INSERT_CALL,
        {
            "id": call_id,
            "seq": seq,
            "account_id": account_id,
            "agent_id": agent.id,
            "to_number": to_number,
            "from_number": from_number,
            "state": lifecycle.QUEUED,
            "outcome": plan.outcome,
            "scenario": plan.scenario,
            "ring_sec": plan.ring_sec,
            "talk_sec": plan.talk_sec,
            "sentiment": plan.sentiment,
            "created_at": now,
            "updated_at": now,
            "next_step_at": now + wait,
        },
    )
    tx.after_commit.append(job_for(call_id, lifecycle.QUEUED, rt.clock.real_delay(wait)))
    return CallQueued(callId=call_id, status=lifecycle.QUEUED)


def plan_of(row: Any) -> Plan:
    return Plan(
        outcome=row.outcome,
        scenario=row.scenario,
        ring_sec=row.ring_sec,
        talk_sec=row.talk_sec,
        sentiment=row.sentiment,
    )


@dataclass(frozen=True, slots=True)
class StepResult:
    state: str
    """The call's state after the step (or as found, when nothing was due)."""
    next_step_at: float | None
    """Sandbox time of the next step; None once ended."""
    advanced: bool
    delivery_jobs: list[JobSpec]


async def step(
    conn: AsyncConnection,
    call_id: str,
    clock: Clock,
    seed: int,
    rates: RateTable,
    *,
    tolerance: float = 0.0,
) -> StepResult | None:
    """Advance the call through every transition that is due, in this one transaction
    (at high time scales that is the whole call). None: no such call."""
    row = (await run(conn, _CALL, {"w_id": call_id})).first()
    if row is None:
        return None
    if row.state == lifecycle.ENDED or row.next_step_at is None:
        return StepResult(row.state, None, False, [])
    now = clock.now()
    plan = plan_of(row)
    call = SimpleNamespace(**row._asdict())
    advanced = False
    jobs: list[JobSpec] = []
    while call.next_step_at is not None and call.next_step_at <= now + tolerance:
        transition = lifecycle.next_state(call.state, plan)
        assert transition is not None
        new_state, _ = transition
        # The step happens at its planned sandbox time, so durations add up exactly.
        at = call.next_step_at
        following = lifecycle.next_state(new_state, plan)
        next_at = None if following is None else at + following[1]
        values: dict[str, Any] = {"state": new_state, "updated_at": now, "next_step_at": next_at}
        if new_state == lifecycle.RINGING:
            values["ringing_at"] = at
        elif new_state == lifecycle.ANSWERED:
            values["answered_at"] = at
        elif new_state == lifecycle.ENDED:
            values["ended_at"] = at
        result = await run(conn, _STEP, {**values, "w_id": call_id, "w_state": call.state})
        if result.rowcount != 1:  # another worker took this step
            break
        advanced = True
        if new_state == lifecycle.ENDED:
            jobs = await _finish(conn, call, plan, at, seed, rates)
        for key, value in values.items():
            setattr(call, key, value)
    return StepResult(call.state, call.next_step_at, advanced, jobs)


async def _finish(
    conn: AsyncConnection, row: Any, plan: Plan, ended_at: float, seed: int, rates: RateTable
) -> list[JobSpec]:
    """The end of a call: CDR, balance debit, events — one transaction with the step."""
    agent = (await run(conn, _AGENT, {"w_id": row.agent_id})).one()
    account = (await run(conn, _CURRENCY, {"w_id": row.account_id})).one()
    start = row.ringing_at if row.ringing_at is not None else row.created_at
    duration = int(round(ended_at - start))
    billsec = 0
    if plan.outcome == lifecycle.ANSWERED and row.answered_at is not None:
        # From the timestamps, not the plan: a fast-forward may have cut the talk short.
        billsec = min(duration, int(round(ended_at - row.answered_at)))
    rate = rates.rate_for(row.to_number)
    cents = price_cents(billsec, rate.cents_per_minute)
    await cdr_service.insert_one(
        conn,
        {
            "id": cdr_service.cdr_id(start, row.seq),
            "account_id": row.account_id,
            "call_id": row.id,
            "start_time": float(int(start)),
            "duration": duration,
            "billsec": billsec,
            "src": row.from_number or agent.caller_id,
            "dst": row.to_number,
            "disposition": lifecycle.DISPOSITIONS[plan.outcome],
            "sip_username": agent.sip_username,
            "sell_price_cents": cents,
            "currency": account.currency,
            "country": rate.country,
            "did": agent.did,
        },
    )
    if cents:
        await run(
            conn, _DEBIT, {"w_id": row.account_id, "w_e4": cents * (account_service.E4 // 100)}
        )
    base = {
        "callId": row.id,
        "contactId": contact_id(row.account_id, row.to_number),
        "phone": row.to_number,
        "dispositionCode": lifecycle.disposition_code(plan),
        "actor": f"ai_agent:{row.agent_id}",
    }
    jobs: list[JobSpec] = []
    for event_type in lifecycle.events_for(plan):
        payload = dict(base)
        if event_type == "call.transferred":
            payload["actor"] = "human"
        if event_type == "call.ended":
            payload.update(
                durationSec=billsec,
                hangupReason=lifecycle.hangup_reason(plan),
                sentimentLabel=plan.sentiment,
                transferInitiated=plan.scenario == lifecycle.TRANSFERRED,
            )
        jobs += await event_service.emit(
            conn,
            row.account_id,
            event_type,
            payload,
            ended_at,
            seed,
            event_id=derived_uuid(seed, "event", row.id, event_type),
            call_id=row.id,
        )
    return jobs


def contact_id(account_id: int, phone: str) -> str:
    return "ct_" + hashlib.sha256(f"{account_id}:{phone}".encode()).hexdigest()[:16]


async def describe(conn: AsyncConnection, call_id: str) -> dict[str, Any]:
    """The control plane's view: state, timestamps, plan and events."""
    row = (await conn.execute(select(calls).where(calls.c.id == call_id))).first()
    if row is None:
        raise NotFound(f"No call {call_id!r}.")

    def ts(value: float | None) -> str | None:
        return None if value is None else iso(value)

    return {
        "callId": row.id,
        "customerId": str(row.account_id),
        "aiAgentId": str(row.agent_id),
        "toNumber": row.to_number,
        "fromNumber": row.from_number,
        "state": row.state,
        "outcome": row.outcome,
        "scenario": row.scenario,
        "ringSec": row.ring_sec,
        "talkSec": row.talk_sec,
        "sentiment": row.sentiment,
        "createdAt": ts(row.created_at),
        "ringingAt": ts(row.ringing_at),
        "answeredAt": ts(row.answered_at),
        "endedAt": ts(row.ended_at),
        "nextStepAt": ts(row.next_step_at),
        "events": await event_service.for_call(conn, call_id),
    }


async def due_calls(conn: AsyncConnection, before: float, limit: int = 500) -> list[Any]:
    stmt = (
        select(calls.c.id, calls.c.state, calls.c.next_step_at)
        .where(calls.c.next_step_at.is_not(None), calls.c.next_step_at <= before)
        .order_by(calls.c.next_step_at)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


async def make_all_due(conn: AsyncConnection, now: float) -> list[Any]:
    """Fast-forward: every pending step becomes due now. Returns the calls to kick."""
    stmt = (
        update(calls)
        .where(calls.c.next_step_at.is_not(None), calls.c.next_step_at > now)
        .values(next_step_at=now)
        .returning(calls.c.id, calls.c.state)
    )
    return list((await conn.execute(stmt)).all())
