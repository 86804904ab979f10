"""Demo traffic: a believable call floor on a demo account, for showing the sandbox.

A run belongs to one account: one the demo created (``Northwind Dialers (demo)``, reused
by later runs) or one chosen by the caller. It never places calls, adds agents or hooks on
any other account. Its agents each place a call, talk, wrap up, pause and call again, until
the run's end (sandbox time); then no new calls are placed, the calls in flight finish, and
the run is ``finished``. Destinations mix the forcing numbers (busy, no answer, failed,
voicemail, transfer, DNC, lead completed) with valid numbers of many countries. Every
event of the account goes, signed, to the built-in inbox ``demo-<customerId>``.

The run's state is a row (``demo_runs``); an arq job (``workers.demo``) places the calls
that are due and enqueues itself for the next tick. Its tick counter is claimed with a
conditional UPDATE, so a duplicate job (or a recovery kick) never places calls twice, and
any API process or worker can carry the run on.
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import lru_cache
from typing import Any

import msgspec
import phonenumbers
from sqlalchemy import and_, func, select, update

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import accounts, agents, calls, demo_runs, hooks
from unlimcall_sandbox.server.db.unit import UnitOfWork
from unlimcall_sandbox.server.errors import ApiError, InvalidInput, NotFound
from unlimcall_sandbox.server.ids import derived_uuid, next_id
from unlimcall_sandbox.server.job_queue import JobSpec
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import hooks as hook_service
from unlimcall_sandbox.server.services.deps import Deps
from unlimcall_sandbox.server.services.events import EVENT_TYPES
from unlimcall_sandbox.server.structs import AccountCreate, AgentCreate

DEMO_TICK = "demo_tick"
"""The arq job (``unlimcall_sandbox.workers.demo.demo_tick``)."""

RUNNING, WINDING_DOWN, FINISHED = "running", "winding_down", "finished"
DEFAULT_AGENTS, MAX_AGENTS = 12, 50
DEFAULT_MINUTES, MAX_MINUTES = 10.0, 24 * 60.0
COMPANY = "Northwind Dialers (demo)"
EMAIL = "demo@northwind.example"
START_BALANCE = 250.0
TOP_UP_BELOW = 25.0
# A tick every 5 sandbox seconds, at most once a second and at least 20 times a second.
TICK_SANDBOX = 5.0
TICK_MIN_REAL, TICK_MAX_REAL = 0.05, 1.0
# A run whose next tick is this many real seconds late lost its job: a read kicks it.
KICK_AFTER = 10.0

AGENT_NAMES = (
    "Ava · Renewals",
    "Noah · Onboarding",
    "Mia · Collections",
    "Leo · Win-back",
    "Zoe · Appointments",
    "Eli · Surveys",
    "Ivy · Upsell",
    "Max · Follow-ups",
    "Ada · Lead qualification",
    "Kai · Reminders",
    "Uma · Feedback",
    "Rex · Reactivation",
    "Nia · Renewals",
    "Sam · Onboarding",
    "Lia · Collections",
    "Otto · Win-back",
)

# The forcing numbers and how often the floor dials each (the rest: real-looking numbers
# of many countries, whose outcome the seeded plan decides).
FORCED_MIX: tuple[tuple[str, float], ...] = (
    ("+15005550008", 0.09),  # lead completed
    ("+15005550006", 0.06),  # transferred to a human
    ("+15005550005", 0.06),  # voicemail
    ("+15005550007", 0.04),  # do-not-call
    ("+15005550002", 0.04),  # busy
    ("+15005550003", 0.04),  # no answer
    ("+15005550004", 0.02),  # failed
)
REGIONS: tuple[tuple[str, float], ...] = (
    ("US", 6),
    ("CA", 2),
    ("GB", 3),
    ("DE", 2),
    ("FR", 2),
    ("ES", 1.5),
    ("IT", 1.5),
    ("NL", 1),
    ("PL", 1),
    ("UA", 1),
    ("AU", 1.5),
    ("IN", 1.5),
    ("BR", 1.5),
    ("MX", 1.5),
    ("JP", 1),
    ("ZA", 0.7),
    ("SG", 0.7),
    ("SE", 0.7),
    ("IE", 0.7),
    ("CH", 0.7),
    ("AR", 0.5),
    ("KE", 0.5),
    ("PH", 0.5),
    ("NZ", 0.5),
)


class DemoStart(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    agents: int = DEFAULT_AGENTS
    minutes: float = DEFAULT_MINUTES
    customerId: str | None = None


class Conflict(ApiError):
    code = "conflict"
    status = 409
    default_message = "A demo is already running; stop it first."


# -- pure: timing and destinations ---------------------------------------------------------


def _hash(*parts: object) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def wrap_seconds(call_id: str, answered: bool) -> int:
    """Sandbox seconds an agent spends wrapping up after a call (notes, disposition):
    8-30 after a conversation, 2-5 after a call nobody took."""
    h = _hash("wrap", call_id)
    return 8 + h % 23 if answered else 2 + h % 4


def pause_seconds(call_id: str) -> int:
    """Sandbox seconds a demo agent waits after its wrap-up before dialing again."""
    return 4 + _hash("pause", call_id) % 37


def stagger_seconds(run_id: str, index: int) -> int:
    """When a demo agent dials first, after the run starts (all within 20 s)."""
    return 0 if index == 0 else 1 + _hash("stagger", run_id, index) % 20


def tick_interval(scale: float) -> float:
    """Real seconds between ticks at this time scale."""
    return min(TICK_MAX_REAL, max(TICK_MIN_REAL, TICK_SANDBOX / scale))


@lru_cache(maxsize=64)
def _example(region: str) -> tuple[int, str]:
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert number is not None
    return int(number.country_code or 0), str(number.national_number)


def destination(seed: int, run_id: str, n: int) -> str:
    """The ``n``-th number a run dials: seeded, so the same run dials the same numbers."""
    rng = random.Random(f"{seed}:demo:{run_id}:{n}")
    roll = rng.random()
    for number, share in FORCED_MIX:
        if roll < share:
            return number
        roll -= share
    names = [r for r, _ in REGIONS]
    region = rng.choices(names, weights=[w for _, w in REGIONS])[0]
    code, national = _example(region)
    for _ in range(5):
        candidate = national[:-4] + f"{rng.randrange(10_000):04d}"
        parsed = phonenumbers.parse(f"+{code}{candidate}")
        if phonenumbers.is_valid_number(parsed):
            return f"+{code}{candidate}"
    return f"+{code}{national}"


# -- agent activity (also what the call floor shows for any account) -----------------------


def activity(call: Any, now: float) -> dict[str, Any]:
    """What an agent whose latest call is ``call`` is doing at sandbox time ``now``:
    idle, ringing (dialing or ringing), talking or wrap-up; since when, until when."""
    if call is None:
        return {"activity": "idle", "since": None, "until": None}
    if call.state in ("queued", "ringing"):
        return {"activity": "ringing", "since": call.created_at, "until": None}
    if call.state == "answered":
        return {"activity": "talking", "since": call.answered_at, "until": None}
    ended = call.ended_at if call.ended_at is not None else call.updated_at
    wrap_until = ended + wrap_seconds(call.id, call.answered_at is not None)
    if call.state != "ended" or now < wrap_until:
        return {"activity": "wrap-up", "since": ended, "until": wrap_until}
    return {"activity": "idle", "since": wrap_until, "until": None}


async def latest_calls(conn: Conn, account_id: int) -> dict[int, Any]:
    """Each agent's latest call on this account, by agent id."""
    newest = (
        select(calls.c.agent_id, func.max(calls.c.seq).label("seq"))
        .where(calls.c.account_id == account_id)
        .group_by(calls.c.agent_id)
        .subquery()
    )
    rows = (
        await conn.execute(
            select(calls).join(
                newest, and_(calls.c.agent_id == newest.c.agent_id, calls.c.seq == newest.c.seq)
            )
        )
    ).all()
    return {int(r.agent_id): r for r in rows}


def next_call_at(run: Any, index: int, latest: Any) -> float | None:
    """When agent ``index`` of ``run`` dials next (sandbox time); None while it is busy."""
    first: float = run.started_at + stagger_seconds(run.id, index)
    if latest is None:
        return first
    if latest.state != "ended" or latest.ended_at is None:
        return None
    done: float = latest.ended_at + wrap_seconds(latest.id, latest.answered_at is not None)
    return max(first, done + pause_seconds(latest.id))


# -- runs ----------------------------------------------------------------------------------


def tick_job(run_id: str, tick: int, delay: float, tag: str = "") -> JobSpec:
    """The job for tick ``tick`` of a run; its id makes a duplicate a no-op."""
    suffix = f":{tag}" if tag else ""
    return JobSpec(DEMO_TICK, f"{run_id}/{tick}", f"demo:{run_id}:{tick}{suffix}", delay)


def parse_job_arg(arg: str) -> tuple[str, int]:
    run_id, _, tick = arg.rpartition("/")
    return run_id, int(tick)


async def _account_of(conn: Conn, run: Any) -> Any | None:
    """The run's account, if it is still the one the run started on (ids are reused
    after a reset: the creation time tells them apart)."""
    row = (await conn.execute(select(accounts).where(accounts.c.id == run.account_id))).first()
    if row is None or row.created_at != run.account_created_at:
        return None
    return row


async def account_of(conn: Conn, run: Any) -> Any | None:
    return await _account_of(conn, run)


async def _reusable_account(conn: Conn) -> Any | None:
    """The account an earlier run created, if it still exists."""
    rows = (
        await conn.execute(
            select(demo_runs)
            .where(demo_runs.c.created_account.is_(True))
            .order_by(demo_runs.c.started_at.desc())
            .limit(5)
        )
    ).all()
    for run in rows:
        account = await _account_of(conn, run)
        if account is not None:
            return account
    return None


async def _agents_for(tx: UnitOfWork, deps: Deps, account: Any, count: int) -> list[int]:
    """The first ``count`` provisioned agents of the account, created as needed."""
    rows = (
        await tx.conn.execute(
            select(agents.c.id)
            .where(agents.c.account_id == account.id, agents.c.provisioned.is_(True))
            .order_by(agents.c.id)
            .limit(count)
        )
    ).all()
    ids = [int(r.id) for r in rows]
    now = deps.clock.now()
    while len(ids) < count:
        n = len(ids)
        label = AGENT_NAMES[n % len(AGENT_NAMES)]
        if n >= len(AGENT_NAMES):
            label += f" {n // len(AGENT_NAMES) + 1}"
        row = await account_service.create_agent(
            tx.conn, account.id, AgentCreate(label=label, callerId="+14155550100"), now
        )
        ids.append(int(row.id))
    return ids


async def _subscribe(tx: UnitOfWork, deps: Deps, account_id: int, target: str) -> None:
    """Hooks for every event type to the inbox, unless the account has them already."""
    existing = set(
        (
            await tx.conn.execute(
                select(hooks.c.event).where(
                    hooks.c.account_id == account_id,
                    hooks.c.target_url == target,
                    hooks.c.active.is_(True),
                )
            )
        ).scalars()
    )
    for event in EVENT_TYPES:
        if event not in existing:
            await hook_service.create(tx, deps, account_id, {"event": event, "target_url": target})


def inbox_name(account_id: int) -> str:
    return f"demo-{account_id}"


async def start(tx: UnitOfWork, deps: Deps, data: DemoStart, base_url: str) -> dict[str, Any]:
    """Start a run (409 while another one is placing calls). ``base_url`` is how the
    worker reaches this sandbox's inbox."""
    if not 1 <= data.agents <= MAX_AGENTS:
        raise InvalidInput(f"agents must be 1..{MAX_AGENTS}.")
    if not (0 < data.minutes <= MAX_MINUTES):
        raise InvalidInput(f"minutes must be more than 0 and at most {MAX_MINUTES:g}.")
    conn = tx.conn
    now = deps.clock.now()
    running = (
        await conn.execute(
            select(demo_runs).where(demo_runs.c.status == RUNNING, demo_runs.c.ends_at > now)
        )
    ).first()
    if running is not None:
        raise Conflict(
            f"A demo is already running on customer {running.account_id} until "
            f"{iso(running.ends_at)}; stop it first (POST /_sandbox/demo/stop)."
        )
    if data.customerId is not None:
        account = await account_service.get(
            conn, account_service.parse_customer_id(data.customerId)
        )
        created = False
    else:
        account = await _reusable_account(conn)
        if account is None:
            account = await account_service.create(
                conn,
                AccountCreate(
                    companyName=COMPANY,
                    primaryContactEmail=EMAIL,
                    accountType="prepaid",
                    balance=START_BALANCE,
                    currency="USD",
                ),
                now,
            )
        elif account_service.from_e4(account.balance_e4) < TOP_UP_BELOW or (
            account.status != "active" or not account.provisioned or not account.dialer_enabled
        ):
            # Ours: make it able to dial again (a demo could have spent it, or someone
            # suspended it from the dashboard).
            await conn.execute(
                update(accounts)
                .where(accounts.c.id == account.id)
                .values(
                    balance_e4=max(account.balance_e4, account_service.to_e4(START_BALANCE)),
                    status="active",
                    provisioned=True,
                    dialer_enabled=True,
                    engine_configured=True,
                )
            )
            tx.on_commit.append(lambda: deps.invalidate_account(int(account.id)))
        created = True
    agent_ids = await _agents_for(tx, deps, account, data.agents)
    inbox = inbox_name(int(account.id))
    await _subscribe(tx, deps, int(account.id), f"{base_url.rstrip('/')}/_sandbox/inbox/{inbox}")
    seq = await next_id(conn, "demo")
    run_id = derived_uuid(deps.seed, "demo", seq)
    values = {
        "id": run_id,
        "account_id": int(account.id),
        "account_created_at": account.created_at,
        "created_account": created,
        "inbox": inbox,
        "agent_ids": json.dumps(agent_ids),
        "minutes": float(data.minutes),
        "status": RUNNING,
        "started_at": now,
        "ends_at": now + data.minutes * 60.0,
        "stopped_at": None,
        "finished_at": None,
        "tick": 0,
        "next_tick_real": deps.clock.real_now(),
        "calls_placed": 0,
        "last_error": None,
    }
    await conn.execute(demo_runs.insert().values(**values))
    tx.after_commit.append(tick_job(run_id, 0, 0.0))
    run = (await conn.execute(select(demo_runs).where(demo_runs.c.id == run_id))).one()
    return await view(conn, run, now)


async def stop(tx: UnitOfWork, deps: Deps) -> dict[str, Any]:
    """End the running demo now: no new calls; the ones in flight finish."""
    now = deps.clock.now()
    run = (
        await tx.conn.execute(
            select(demo_runs)
            .where(demo_runs.c.status == RUNNING)
            .order_by(demo_runs.c.started_at.desc())
        )
    ).first()
    if run is None:
        raise NotFound("No demo is running.")
    await tx.conn.execute(
        update(demo_runs)
        .where(demo_runs.c.id == run.id)
        .values(ends_at=min(run.ends_at, now), stopped_at=now)
    )
    # The next tick winds it down; kick one in case the chain is sleeping.
    tx.after_commit.append(tick_job(run.id, run.tick, 0.0, f"stop{int(now)}"))
    run = (await tx.conn.execute(select(demo_runs).where(demo_runs.c.id == run.id))).one()
    return await view(tx.conn, run, now)


async def latest(conn: Conn, account_id: int | None = None) -> Any | None:
    stmt = select(demo_runs).order_by(demo_runs.c.started_at.desc()).limit(1)
    if account_id is not None:
        stmt = stmt.where(demo_runs.c.account_id == account_id)
    return (await conn.execute(stmt)).first()


async def in_flight(conn: Conn, run: Any) -> int:
    ids = json.loads(run.agent_ids)
    return int(
        (
            await conn.execute(
                select(func.count())
                .select_from(calls)
                .where(
                    calls.c.account_id == run.account_id,
                    calls.c.agent_id.in_(ids),
                    calls.c.created_at >= run.started_at,
                    calls.c.state != "ended",
                )
            )
        ).scalar_one()
    )


async def view(conn: Conn, run: Any, now: float) -> dict[str, Any]:
    status = run.status
    if status == RUNNING and now >= run.ends_at:
        status = WINDING_DOWN  # the next tick will say so too
    return {
        "id": run.id,
        "customerId": str(run.account_id),
        "createdAccount": bool(run.created_account),
        "inbox": run.inbox,
        "agents": len(json.loads(run.agent_ids)),
        "minutes": run.minutes,
        "status": status,
        "startedAt": iso(run.started_at),
        "endsAt": iso(run.ends_at),
        "stoppedAt": None if run.stopped_at is None else iso(run.stopped_at),
        "finishedAt": None if run.finished_at is None else iso(run.finished_at),
        "remainingSec": max(0.0, round(run.ends_at - now, 1)) if status == RUNNING else 0.0,
        "t": {"started": run.started_at, "ends": run.ends_at, "finished": run.finished_at},
        "callsPlaced": run.calls_placed,
        "callsInFlight": await in_flight(conn, run) if status != FINISHED else 0,
        "lastError": run.last_error,
    }


async def status(conn: Conn, now: float) -> dict[str, Any]:
    run = await latest(conn)
    return {"demo": None if run is None else await view(conn, run, now)}


async def overdue(conn: Conn, real_now: float) -> list[JobSpec]:
    """Recovery jobs for runs whose tick job was lost (Redis restarted, worker killed),
    as of wall time ``real_now``."""
    rows = (
        await conn.execute(
            select(demo_runs.c.id, demo_runs.c.tick).where(
                demo_runs.c.status != FINISHED,
                demo_runs.c.next_tick_real < real_now - KICK_AFTER,
            )
        )
    ).all()
    bucket = int(real_now // KICK_AFTER)
    return [tick_job(r.id, r.tick, 0.0, f"kick{bucket}") for r in rows]
