"""The shared clock anchor in the database: re-reading it, and moving it forward.

``advance`` moves sandbox time, not history: the anchor moves (``anchor_sandbox += n``),
then every call step due in the window runs in planned-time order *as of its planned time*
(``calls.step(as_of=...)``), so CDRs keep their planned durations and prices. Webhook
attempts due in the window are queued in planned order; what is still pending afterwards
gets a fresh job for its new (shorter) real delay.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace

from sqlalchemy import select, update

from unlimcall_sandbox.server.clock import SYNC_TTL, Clock
from unlimcall_sandbox.server.db.port import Conn, Database
from unlimcall_sandbox.server.db.tables import calls, deliveries
from unlimcall_sandbox.server.db.tables import clock as clock_table
from unlimcall_sandbox.server.job_queue import JobSpec
from unlimcall_sandbox.server.rating import RateTable
from unlimcall_sandbox.server.services import calls as call_service
from unlimcall_sandbox.server.services.events import delivery_job

_ANCHOR = select(
    clock_table.c.scale, clock_table.c.anchor_real, clock_table.c.anchor_sandbox
).where(clock_table.c.id == 1)
_PENDING = "pending"
# ``step`` reads no clock when told the time (``as_of``); it still takes one.
_STILL = Clock(1.0, 0.0, 0.0)


async def sync(db: Database, clk: Clock, max_age: float = SYNC_TTL) -> None:
    """Re-read the shared anchor when this process's copy is older than ``max_age`` real
    seconds (0: always). One primary-key read."""
    now = clk.real_now()
    if now - clk.synced_at < max_age:
        return
    # One re-read at a time: callers arriving while it is in flight go on with the anchor
    # they have (on SQLite every request of a busy second used to queue a read of its own).
    clk.synced_at = now
    async with db.read() as conn:
        row = (await conn.execute(_ANCHOR)).first()
    # Taken meanwhile (this process's own advance committed, or a later read): newer than
    # this row, which must not put the clock back.
    if row is not None and clk.synced_at == now:
        clk.reanchor(row.scale, row.anchor_real, row.anchor_sandbox)


@dataclass(frozen=True, slots=True)
class Advanced:
    target: float
    """The sandbox time the clock now reads."""
    advanced: float
    """Sandbox seconds the clock moved."""
    anchor_real: float
    anchor_sandbox: float
    scale: float
    steps: int
    """Call transitions run in the window."""
    calls: int
    """Distinct calls stepped."""
    deliveries: int
    """Webhook attempts due in the window, queued."""
    jobs: list[JobSpec]


async def advance(
    conn: Conn,
    seed: int,
    rates: RateTable,
    *,
    seconds: float | None = None,
    to: float | None = None,
) -> Advanced:
    """Move the shared anchor forward by ``seconds``, or to sandbox time ``to`` (never
    backwards), or — neither given — until nothing is pending (every call's last planned
    step, every scheduled webhook attempt); run every call step due by then in planned
    order, and queue the webhook attempts due by then. One transaction: the caller
    commits, then reanchors its clock and enqueues ``jobs``."""
    row = (await conn.execute(_ANCHOR.with_for_update())).one()
    now = Clock(row.scale, row.anchor_real, row.anchor_sandbox).now()
    target = now + seconds if seconds is not None else to
    bound = math.inf if target is None else max(target, now)
    reached = now if target is None else bound
    if target is None:
        latest_attempt = (
            await conn.execute(
                select(deliveries.c.next_attempt_at)
                .where(deliveries.c.status == _PENDING, deliveries.c.next_attempt_at.is_not(None))
                .order_by(deliveries.c.next_attempt_at.desc())
            )
        ).first()
        if latest_attempt is not None:
            reached = max(reached, latest_attempt[0])
    jobs: list[JobSpec] = []

    # Call steps, globally in planned-time order; each runs as of its planned time.
    # Every due call is locked first: a worker's step holds one call and then the account
    # row, so stepping call after call while already holding an account (settled earlier
    # in this transaction) would wait on a worker that waits on us (PostgreSQL deadlock).
    due = await call_service.due_calls(conn, bound, limit=1_000_000, lock=True)
    heap = [(c.next_step_at, c.id) for c in due]
    heapq.heapify(heap)
    steps, stepped = 0, set()
    while heap:
        at, call_id = heapq.heappop(heap)
        res = await call_service.step(conn, call_id, _STILL, seed, rates, as_of=at)
        if res is not None and not res.advanced:
            # A worker took this step first: read the call as it is now and go on from there.
            res = await call_service.step(conn, call_id, _STILL, seed, rates, as_of=at)
        if res is None:
            continue
        if res.advanced:
            steps += 1
            stepped.add(call_id)
            reached = max(reached, at)
            jobs += res.delivery_jobs
        nxt = res.next_step_at
        if nxt is not None and nxt <= bound and (res.advanced or nxt > at):
            heapq.heappush(heap, (nxt, call_id))
    target = reached
    anchor_sandbox = row.anchor_sandbox + (target - now)
    await conn.execute(
        update(clock_table).where(clock_table.c.id == 1).values(anchor_sandbox=anchor_sandbox)
    )
    ahead = Clock(row.scale, row.anchor_real, anchor_sandbox)
    tag = f"adv{int(target * 1000)}"

    # Steps still ahead: their queued jobs wait for the old anchor; fresh ones for the new.
    later = await conn.execute(
        select(calls.c.id, calls.c.state, calls.c.next_step_at).where(
            calls.c.next_step_at.is_not(None), calls.c.next_step_at > target
        )
    )
    for c in later:
        jobs.append(call_service.job_for(c.id, c.state, ahead.real_delay(c.next_step_at - target)))

    # Webhook attempts: due ones now, in planned order; later ones at their new delay.
    pending = await conn.execute(
        select(deliveries.c.id, deliveries.c.attempts, deliveries.c.next_attempt_at)
        .where(deliveries.c.status == _PENDING, deliveries.c.next_attempt_at.is_not(None))
        .order_by(deliveries.c.next_attempt_at)
    )
    count = 0
    for d in pending:
        if d.next_attempt_at <= target:
            count += 1
            jobs.append(delivery_job(d.id, d.attempts + 1))
        else:
            jobs.append(
                delivery_job(d.id, d.attempts + 1, ahead.real_delay(d.next_attempt_at - target))
            )
    return Advanced(
        target=target,
        advanced=target - now,
        anchor_real=row.anchor_real,
        anchor_sandbox=anchor_sandbox,
        scale=row.scale,
        steps=steps,
        calls=len(stepped),
        deliveries=count,
        # Fresh job ids: the originally deferred jobs keep theirs and find nothing to do.
        jobs=[replace(j, job_id=f"{j.job_id}:{tag}") for j in jobs],
    )
