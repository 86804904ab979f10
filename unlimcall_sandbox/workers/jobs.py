"""The jobs: ``simulate_call``, ``deliver_event``, ``deliver_webhook``, and the periodic
sweep.

Jobs take ids, never objects, and are idempotent: arq runs a job at least once, and the
database decides what is due (conditional updates, leases). A delivery job only calls the
delivery pipeline (``workers/delivery.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from unlimcall_sandbox.server.clock import SYNC_TTL
from unlimcall_sandbox.server.job_queue import JobSpec
from unlimcall_sandbox.server.runtime import Runtime
from unlimcall_sandbox.server.services import bulk as bulk_service
from unlimcall_sandbox.server.services import calls as call_service
from unlimcall_sandbox.server.services import clock as clock_service
from unlimcall_sandbox.server.services import deliveries as delivery_service
from unlimcall_sandbox.server.services import retention
from unlimcall_sandbox.server.services.events import delivery_job
from unlimcall_sandbox.server.services.inbox import InboxCaps
from unlimcall_sandbox.workers.delivery import (
    DUE_SLACK_REAL,
    Deliverer,
    deliver_first_attempts,
    deliver_one,
)

log = logging.getLogger("unlimcall.worker")

# A step due within this many real seconds is waited for inside the job, instead of a
# deferred job: at high time scales a whole call plays out in one job.
INLINE_WAIT = 1.0


def _rt(ctx: dict[str, Any]) -> Runtime:
    rt: Runtime = ctx["rt"]
    return rt


def _deliverer(ctx: dict[str, Any]) -> Deliverer:
    d: Deliverer = ctx["deliverer"]
    return d


async def _sync_clock(ctx: dict[str, Any]) -> None:
    """Pick up another process's clock advance. A job an advance queued (its id carries
    ``:adv``) re-reads the anchor first; any other job tolerates an anchor up to
    ``SYNC_TTL`` old (a stale anchor only makes things due later, never rewrites them)."""
    rt = _rt(ctx)
    fresh = ":adv" in str(ctx.get("job_id", ""))
    await clock_service.sync(rt.db, rt.clock, 0.0 if fresh else SYNC_TTL)


async def simulate_call(ctx: dict[str, Any], call_id: str) -> str:
    """Advance a call through its lifecycle for as long as its next step is near."""
    rt = _rt(ctx)
    await _sync_clock(ctx)
    slack = DUE_SLACK_REAL * rt.clock.scale
    while True:
        async with rt.db.write() as conn:
            res = await call_service.step(
                conn, call_id, rt.clock, rt.settings.resolved_seed, rt.rates, tolerance=slack
            )
        if res is None:
            return "missing"
        if res.delivery_jobs:
            await rt.jobs.enqueue(res.delivery_jobs)
        if res.next_step_at is None:
            return res.state
        delay = rt.clock.real_delay_until(res.next_step_at)
        if not res.advanced and delay <= DUE_SLACK_REAL:
            return "taken"  # due, yet another worker moved it first
        if delay > INLINE_WAIT:
            await rt.jobs.enqueue([call_service.job_for(call_id, res.state, delay)])
            return res.state
        if delay > 0:
            await asyncio.sleep(delay)


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str:
    """Send the due attempt of one delivery (a retry, a redelivery, a swept one)."""
    await _sync_clock(ctx)
    return await deliver_one(_deliverer(ctx), delivery_id) or "skipped"


async def deliver_event(ctx: dict[str, Any], event_id: str) -> str:
    """Send the first attempt of every delivery of a new event."""
    await _sync_clock(ctx)
    return f"{len(await deliver_first_attempts(_deliverer(ctx), event_id))} sent"


# Overdue by more than this (real seconds), a step or delivery is presumed to have lost its
# job, and the sweep enqueues a recovery job.
SWEEP_GRACE = 2.0
# Recovery job ids are unique per window of this many real seconds: a job stuck "in
# progress" in arq (its worker was killed) cannot block recovery, yet a long backlog gets
# at most one extra job per item per window. Extra jobs are harmless: steps and attempts
# are claimed in the database.
SWEEP_BUCKET = 30.0


async def sweep_once(
    rt: Runtime, waiting: Callable[[str], bool] = lambda _id: False
) -> tuple[int, int]:
    """Re-enqueue call steps and deliveries that are overdue: their jobs were lost
    (Redis restarted, worker killed). ``waiting``: deliveries this worker holds back
    (``delivery.Fairness``), overdue yet not lost."""
    await clock_service.sync(rt.db, rt.clock)
    before = rt.clock.now() - SWEEP_GRACE * rt.clock.scale
    async with rt.db.read() as conn:
        calls = await call_service.due_calls(conn, before)
        dues = await delivery_service.due(conn, before, rt.clock.real_now())
        bulk = await bulk_service.stalled(conn, rt.clock.real_now())
    dues = [d for d in dues if not waiting(str(d.id))]
    tag = f"sweep{int(rt.clock.real_now() // SWEEP_BUCKET)}"
    jobs: list[JobSpec] = [call_service.job_for(c.id, c.state, 0.0) for c in calls]
    jobs += [delivery_job(d.id, d.attempts + 1) for d in dues]
    jobs += bulk  # bulk jobs whose arq job was lost
    if jobs:
        await rt.jobs.enqueue([replace(j, job_id=f"{j.job_id}:{tag}") for j in jobs])
    return len(calls), len(dues)


async def run_bulk_job(ctx: dict[str, Any], job_id: str) -> str:
    """Work on a bulk job (``services.bulk``) for one slice; queue its continuation."""
    rt = _rt(ctx)
    follow = await bulk_service.run(
        lambda: rt.db.write(), job_id, rt.settings.resolved_seed, rt.rates, rt.clock.real_now
    )
    if follow is None:
        return "finished"
    await rt.jobs.enqueue([follow])
    return "continued"


async def sweep_forever(rt: Runtime, waiting: Callable[[str], bool] = lambda _id: False) -> None:
    while True:
        await asyncio.sleep(rt.settings.sweep_interval)
        try:
            calls, dues = await sweep_once(rt, waiting)
            if calls or dues:
                log.info("sweep re-enqueued %d call steps and %d deliveries", calls, dues)
        except Exception:  # keep sweeping whatever one round hit
            log.exception("sweep failed")
        try:
            deleted = await retain(rt)
            if deleted:
                log.info("retention deleted %s", deleted)
        except Exception:
            log.exception("retention sweep failed")


async def retain(rt: Runtime) -> dict[str, int]:
    """Trim the inboxes to their caps and delete what is older than the retention age
    (sandbox time; CDRs stay): ``services.retention``."""
    s = rt.settings
    caps = InboxCaps(s.inbox_message_bytes, s.inbox_max_messages, s.inbox_max_inboxes)
    return await retention.sweep(lambda: rt.db.write(), rt.clock.now(), s.retention_age, caps)
