"""Calls: origination (``POST /v1/calls``) and the lifecycle step the worker runs.

A call's whole state is its row. ``step()`` moves it one transition along the declared
table with a conditional UPDATE (``WHERE state = <expected>``), so a job that runs twice,
or two workers racing, advance it once. The final step writes the CDR (unique per call),
debits the balance and writes the events, in the same transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, select, text, update

from unlimcall_sandbox.server import lifecycle
from unlimcall_sandbox.server.clock import Clock, iso
from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import accounts, agents, calls
from unlimcall_sandbox.server.db.unit import UnitOfWork
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
from unlimcall_sandbox.server.ids import derived_uuid, next_id
from unlimcall_sandbox.server.job_queue import SIMULATE_CALL, JobSpec
from unlimcall_sandbox.server.lifecycle import Plan
from unlimcall_sandbox.server.phone import is_e164
from unlimcall_sandbox.server.rating import RateTable, price_cents
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import cdrs as cdr_service
from unlimcall_sandbox.server.services import events as event_service
from unlimcall_sandbox.server.services.deps import Deps
from unlimcall_sandbox.server.structs import CallQueued, CallView


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


# Hot-path statements (``Conn.run``, prepared once on SQLite): built once, bound per call.
# The account and the agent asked for, in one round trip (no agent: NULLs).
_ACCOUNT_AGENT = (
    select(
        accounts.c.id,
        accounts.c.account_type,
        accounts.c.balance_e4,
        accounts.c.credit_limit_e4,
        accounts.c.status,
        accounts.c.provisioned,
        accounts.c.dialer_enabled,
        accounts.c.engine_configured,
        agents.c.id.label("agent_id"),
        agents.c.provisioned.label("agent_provisioned"),
    )
    .select_from(
        accounts.outerjoin(
            agents,
            and_(agents.c.id == bindparam("w_agent"), agents.c.account_id == accounts.c.id),
        )
    )
    .where(accounts.c.id == bindparam("w_account"))
)
_INSERT_CALL = calls.insert()
_CALL = select(calls).where(calls.c.id == bindparam("w_id"))
_STEP = update(calls).where(calls.c.id == bindparam("w_id"), calls.c.state == bindparam("w_state"))
_AGENT = select(agents.c.caller_id, agents.c.sip_username, agents.c.did).where(
    agents.c.id == bindparam("w_id")
)
# Funds (issue 15, item 5). Placement holds ``reservation_e4`` on the account for each
# call in flight, only while what is left above the account's floor covers it (a
# conditional UPDATE: two placements racing for the last cents cannot both win, on
# either backend). The end of the call releases it and bills, capped at what is left.
_RESERVE = (
    update(accounts)
    .where(
        accounts.c.id == bindparam("w_id"),
        accounts.c.balance_e4 - accounts.c.reserved_e4 >= bindparam("w_need"),
    )
    .values(reserved_e4=accounts.c.reserved_e4 + bindparam("w_e4"))
)
_RESERVE_UNLIMITED = (
    update(accounts)
    .where(accounts.c.id == bindparam("w_id"))
    .values(reserved_e4=accounts.c.reserved_e4 + bindparam("w_e4"))
)
_CUT = update(calls).where(calls.c.id == bindparam("w_id"))
# The end of a call (``_finish``): the funds as read, or with the row locked; then the
# release of the call's hold and the debit in one UPDATE, last — on the condition that
# what is left above the floor (less the other calls' holds) covers the debit, when the
# funds were read unlocked.
_FUNDS_SNAPSHOT = select(
    accounts.c.currency,
    accounts.c.account_type,
    accounts.c.balance_e4,
    accounts.c.reserved_e4,
    accounts.c.credit_limit_e4,
).where(accounts.c.id == bindparam("w_id"))
_FUNDS_LOCKED = _FUNDS_SNAPSHOT.with_for_update()
_SETTLE_VALUES = {
    "reserved_e4": accounts.c.reserved_e4 - bindparam("w_release"),
    "balance_e4": accounts.c.balance_e4 - bindparam("w_debit"),
}
_SETTLE = update(accounts).where(accounts.c.id == bindparam("w_id")).values(_SETTLE_VALUES)
_SETTLE_COVERED = (
    update(accounts)
    .where(
        accounts.c.id == bindparam("w_id"),
        accounts.c.balance_e4 - accounts.c.reserved_e4 + bindparam("w_release")
        >= bindparam("w_need"),
    )
    .values(_SETTLE_VALUES)
)
_SAVEPOINT = text("SAVEPOINT call_end")
_ROLLBACK_TO_SAVEPOINT = text("ROLLBACK TO SAVEPOINT call_end")
RESERVATION_SEC = 60
"""Placement reserves one minute at the destination's rate for each call in flight."""
INSUFFICIENT_FUNDS = "insufficient_funds"


def floor_e4(account_type: str, credit_limit_e4: int | None) -> int | None:
    """The lowest balance the account may reach: 0 prepaid, −creditLimit postpaid
    (None: a postpaid account without a limit has no floor)."""
    if account_type == "prepaid":
        return 0
    return None if credit_limit_e4 is None else -credit_limit_e4


def _hold_e4(rates: RateTable, to_number: str) -> int:
    """What placing a call to ``to_number`` holds: one minute at its rate."""
    return _minute_e4(rates.rate_for(to_number).cents_per_minute)


@lru_cache(maxsize=256)
def _minute_e4(cents_per_minute: Decimal) -> int:
    return price_cents(RESERVATION_SEC, cents_per_minute) * (account_service.E4 // 100)


async def _reserve(conn: Conn, account: Any, hold_e4: int) -> None:
    """Hold ``hold_e4`` on the account, or answer ``originate_failed`` (insufficient
    funds) when what is left does not cover it. The UPDATE locks the account row until
    commit (on PostgreSQL every placement and call end of the account queues on it), so
    it is the transaction's last statement: the lock is held for one round trip."""
    floor = floor_e4(account.account_type, account.credit_limit_e4)
    if floor is None:
        await conn.run(_RESERVE_UNLIMITED, {"w_id": account.id, "w_e4": hold_e4})
        return
    params = {"w_id": account.id, "w_e4": hold_e4, "w_need": floor + hold_e4}
    if (await conn.run(_RESERVE, params)).rowcount != 1:
        raise OriginateFailed(
            "Upstream rejected the originate: insufficient funds (balance + creditLimit,"
            " less what calls in flight hold, does not cover one minute to this number)."
        )


def affordable_sec(available_e4: int, cents_per_minute: Any) -> int:
    """The longest billsec whose price fits in ``available_e4``."""
    if cents_per_minute <= 0:
        return 1 << 31
    if available_e4 <= 0:
        return 0
    cents = available_e4 // (account_service.E4 // 100)
    sec = int(cents * 60 / cents_per_minute) + 1
    while sec > 0 and price_cents(sec, cents_per_minute) > cents:
        sec -= 1
    return sec


_FUNDS = select(
    accounts.c.account_type,
    accounts.c.balance_e4,
    accounts.c.reserved_e4,
    accounts.c.credit_limit_e4,
).where(accounts.c.id == bindparam("w_id"))


async def _affordable_talk(conn: Conn, call: Any, rates: RateTable) -> int | None:
    """Seconds of talk what is left (with this call's own hold) pays for; None: no limit."""
    account = (await conn.run(_FUNDS, {"w_id": call.account_id})).first()
    if account is None:
        return None
    floor = floor_e4(account.account_type, account.credit_limit_e4)
    if floor is None:
        return None
    available_e4 = account.balance_e4 - account.reserved_e4 + call.reserved_e4 - floor
    return affordable_sec(available_e4, rates.rate_for(call.to_number).cents_per_minute)


def job_for(call_id: str, state: str, delay: float) -> JobSpec:
    """The job that advances ``call_id`` out of ``state``; its id makes duplicates no-ops."""
    return JobSpec(SIMULATE_CALL, call_id, f"call:{call_id}:{state}", delay)


async def originate(tx: UnitOfWork, deps: Deps, account_id: int, body: Any) -> CallQueued:
    agent_id, to_number, from_number = _validate(body)
    conn = tx.conn
    # An id that is no agent's (not a number, or too long for one) finds none.
    wanted = int(agent_id) if agent_id.isdigit() and len(agent_id) <= 15 else -1
    params = {"w_account": account_id, "w_agent": wanted}
    account = (await conn.run(_ACCOUNT_AGENT, params)).one()
    if not account.engine_configured:
        raise EngineNotConfigured()
    if not account.provisioned:
        raise AccountNotProvisioned()
    if not account.dialer_enabled:
        raise DialerRequired()
    if account.agent_id is None:
        raise AiAgentNotFound()
    if not account.agent_provisioned:
        raise AiAgentNotProvisioned()
    if account.status == "suspended":  # the contract lists no 403 here: its 502
        raise OriginateFailed("Upstream rejected the originate: account suspended.")
    if account_service.is_blocked(account):
        raise OriginateFailed("Upstream rejected the originate: the account is blocked (balance).")
    if to_number == lifecycle.REJECT_NUMBER:
        raise OriginateFailed("Upstream rejected the originate.")
    reserved_e4 = _hold_e4(deps.rates, to_number)
    seq = await next_id(conn, "call")
    call_id = derived_uuid(deps.seed, "call", seq)
    plan = lifecycle.plan_call(deps.seed, seq, to_number)
    now = deps.clock.now()
    _, wait = lifecycle.next_state(lifecycle.QUEUED, plan) or ("", 0)
    await conn.run(
        _INSERT_CALL,
        {
            "id": call_id,
            "seq": seq,
            "account_id": account_id,
            "agent_id": account.agent_id,
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
            "reserved_e4": reserved_e4,
        },
    )
    await _reserve(conn, account, reserved_e4)  # last: see ``_reserve``
    tx.after_commit.append(job_for(call_id, lifecycle.QUEUED, deps.clock.real_delay(wait)))
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
    conn: Conn,
    call_id: str,
    clock: Clock,
    seed: int,
    rates: RateTable,
    *,
    tolerance: float = 0.0,
    as_of: float | None = None,
) -> StepResult | None:
    """Advance the call through every transition that is due, in this one transaction
    (at high time scales that is the whole call). None: no such call.

    ``as_of``: the sandbox time to step as of, instead of ``clock.now()`` (a clock advance
    runs each step at its planned time, in order). Either way each transition is stamped
    with its planned time, so durations and prices are the plan's."""
    row = (await conn.run(_CALL, {"w_id": call_id})).first()
    if row is None:
        return None
    if row.state == lifecycle.ENDED or row.next_step_at is None:
        return StepResult(row.state, None, False, [])
    now = clock.now() if as_of is None else as_of
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
            if next_at is not None:
                # The hang-up comes when its cost reaches the limit (``_finish`` bills it).
                talk = await _affordable_talk(conn, call, rates)
                if talk is not None and at + talk < next_at:
                    values["next_step_at"] = next_at = at + talk
        elif new_state == lifecycle.ENDED:
            values["ended_at"] = at
        result = await conn.run(_STEP, {**values, "w_id": call_id, "w_state": call.state})
        if result.rowcount != 1:  # another worker took this step
            break
        advanced = True
        if new_state == lifecycle.ENDED:
            jobs = await _finish(conn, call, plan, at, seed, rates)
        for key, value in values.items():
            setattr(call, key, value)
    return StepResult(call.state, call.next_step_at, advanced, jobs)


async def _finish(
    conn: Conn, row: Any, plan: Plan, ended_at: float, seed: int, rates: RateTable
) -> list[JobSpec]:
    """The end of a call: CDR, release of its hold, balance debit, events — one
    transaction with the step.

    The account row is what every placement and call end of the account updates; on
    PostgreSQL an UPDATE locks it until commit. So the end is settled optimistically:
    computed from the funds as read, written, and the account updated last, on the
    condition that what is left still covers the debit (a round trip before COMMIT under
    the lock, not the whole end). Should the funds have moved meanwhile so that it no
    longer does, the end is undone (a savepoint) and settled again with the account row
    locked first."""
    agent = (await conn.run(_AGENT, {"w_id": row.agent_id})).one()
    await conn.execute(_SAVEPOINT)
    jobs = await _settle(conn, row, plan, ended_at, seed, rates, agent, locked=False)
    if jobs is None:
        await conn.execute(_ROLLBACK_TO_SAVEPOINT)
        jobs = await _settle(conn, row, plan, ended_at, seed, rates, agent, locked=True)
        assert jobs is not None
    return jobs


async def _settle(
    conn: Conn,
    row: Any,
    plan: Plan,
    ended_at: float,
    seed: int,
    rates: RateTable,
    agent: Any,
    *,
    locked: bool,
) -> list[JobSpec] | None:
    """``_finish``'s work; None: not done (only when not ``locked``: the funds no longer
    cover the debit as computed)."""
    funds = _FUNDS_LOCKED if locked else _FUNDS_SNAPSHOT
    account = (await conn.run(funds, {"w_id": row.account_id})).one()
    # What the other calls in flight hold (this call's own hold is released here).
    others_e4 = account.reserved_e4 - row.reserved_e4
    start = row.ringing_at if row.ringing_at is not None else row.created_at
    duration = int(round(ended_at - start))
    billsec = 0
    if plan.outcome == lifecycle.ANSWERED and row.answered_at is not None:
        # From the timestamps, which are the plan's (steps run as of their planned time).
        billsec = min(duration, int(round(ended_at - row.answered_at)))
    rate = rates.rate_for(row.to_number)
    cents = price_cents(billsec, rate.cents_per_minute)
    hangup_reason = lifecycle.hangup_reason(plan)
    floor = floor_e4(account.account_type, account.credit_limit_e4)
    if floor is not None and plan.outcome == lifecycle.ANSWERED and row.answered_at is not None:
        # What is left above the floor, less what the other calls in flight hold.
        available_e4 = account.balance_e4 - others_e4 - floor
        if cents * (account_service.E4 // 100) > available_e4:
            # Cut when its cost reached the limit: ended and billed at that point.
            billsec = affordable_sec(available_e4, rate.cents_per_minute)
            cents = price_cents(billsec, rate.cents_per_minute)
            ended_at = row.answered_at + billsec
            duration = int(round(ended_at - start))
            hangup_reason = INSUFFICIENT_FUNDS
            await conn.run(_CUT, {"w_id": row.id, "ended_at": ended_at})
        elif (
            row.answered_at + plan.talk_sec > ended_at
            and price_cents(billsec + 1, rate.cents_per_minute) * (account_service.E4 // 100)
            > available_e4
        ):
            hangup_reason = INSUFFICIENT_FUNDS  # the hang-up ``step`` scheduled at the limit
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
                hangupReason=hangup_reason,
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
    # Last: the account row stays locked from here to COMMIT.
    debit_e4 = cents * (account_service.E4 // 100)
    settle = {"w_id": row.account_id, "w_release": row.reserved_e4, "w_debit": debit_e4}
    if locked or floor is None or not debit_e4:
        await conn.run(_SETTLE, settle)
    elif (await conn.run(_SETTLE_COVERED, {**settle, "w_need": floor + debit_e4})).rowcount != 1:
        return None
    return jobs


def contact_id(account_id: int, phone: str) -> str:
    return "ct_" + hashlib.sha256(f"{account_id}:{phone}".encode()).hexdigest()[:16]


async def describe(conn: Conn, call_id: str) -> CallView:
    """The control plane's view: state, timestamps, plan and events."""
    row = (await conn.execute(select(calls).where(calls.c.id == call_id))).first()
    if row is None:
        raise NotFound(f"No call {call_id!r}.")

    def ts(value: float | None) -> str | None:
        return None if value is None else iso(value)

    return CallView(
        callId=row.id,
        customerId=str(row.account_id),
        aiAgentId=str(row.agent_id),
        toNumber=row.to_number,
        fromNumber=row.from_number,
        state=row.state,
        outcome=row.outcome,
        scenario=row.scenario,
        ringSec=row.ring_sec,
        talkSec=row.talk_sec,
        sentiment=row.sentiment,
        createdAt=iso(row.created_at),
        ringingAt=ts(row.ringing_at),
        answeredAt=ts(row.answered_at),
        endedAt=ts(row.ended_at),
        nextStepAt=ts(row.next_step_at),
        events=await event_service.for_call(conn, call_id),
    )


async def due_calls(
    conn: Conn, before: float, limit: int = 500, *, lock: bool = False
) -> list[Any]:
    """Calls with a step due by sandbox time ``before``, earliest first. ``lock``: take
    their row locks now (PostgreSQL; SQLite has one writer anyway), for a transaction that
    goes on to step several of them (``services.clock.advance``)."""
    stmt = (
        select(calls.c.id, calls.c.state, calls.c.next_step_at)
        .where(calls.c.next_step_at.is_not(None), calls.c.next_step_at <= before)
        .order_by(calls.c.next_step_at)
        .limit(limit)
    )
    if lock:
        stmt = stmt.with_for_update()
    return list((await conn.execute(stmt)).all())
