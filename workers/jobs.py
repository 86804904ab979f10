"""The jobs: ``simulate_call``, ``deliver_webhook``, and the periodic sweep.

Jobs take ids, never objects, and are idempotent: arq runs a job at least once, and the
database decides what is due (conditional updates, leases).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from typing import Any

import httpx

from server.db.engine import read, write
from server.jobs import JobSpec
from server.retry import RetryPolicy
from server.runtime import Runtime
from server.services import calls as call_service
from server.services import deliveries as delivery_service
from server.services.events import delivery_job
from server.signing import SIGNATURE_HEADER, sign

log = logging.getLogger("unlimcall.worker")
delivery_log = logging.getLogger("unlimcall.delivery")

# A step due within this many real seconds is waited for inside the job, instead of a
# deferred job: at high time scales a whole call plays out in one job.
INLINE_WAIT = 1.0
# Sandbox-time slack when deciding whether a step is due (clock reads across processes).
DUE_SLACK_REAL = 0.005
USER_AGENT = "UnlimCall-Sandbox-Webhooks/1.0"
# A claimed attempt is leased for the webhook timeout plus this many seconds: long enough
# to record the outcome, short enough that a killed worker's attempt is resent soon.
LEASE_MARGIN = 5.0


def _rt(ctx: dict[str, Any]) -> Runtime:
    rt: Runtime = ctx["rt"]
    return rt


async def simulate_call(ctx: dict[str, Any], call_id: str) -> str:
    """Advance a call through its lifecycle for as long as its next step is near."""
    rt = _rt(ctx)
    slack = DUE_SLACK_REAL * rt.clock.scale
    while True:
        async with write(rt.engine) as conn:
            res = await call_service.step(
                conn, call_id, rt.clock, rt.settings.seed, rt.rates, tolerance=slack
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
    """Send one due attempt of a delivery, record it, schedule the next if any."""
    rt = _rt(ctx)
    settings = rt.settings
    async with write(rt.engine) as conn:
        claim = await delivery_service.claim(
            conn,
            delivery_id,
            rt.clock.now(),
            settings.webhook_timeout + 15,
            tolerance=DUE_SLACK_REAL * rt.clock.scale,
        )
    if claim is None:
        return "skipped"
    outcome = await send(ctx["http"], claim, settings.webhook_timeout)
    async with write(rt.engine) as conn:
        job = await delivery_service.record(
            conn,
            claim,
            outcome,
            claim.claimed_at,
            policy(rt),
            settings.seed,
            rt.clock.real_delay_until,
        )
    delivery_log.info(
        json.dumps(
            {
                "msg": "delivery_attempt",
                "deliveryId": claim.delivery_id,
                "event": claim.event_type,
                "attempt": claim.attempt,
                "statusCode": outcome.status_code,
                "latencyMs": outcome.latency_ms,
                "error": outcome.error,
                "outcome": outcome.kind,
                "retryInSec": None if job is None else round(job.delay, 3),
            }
        )
    )
    if job is not None:
        await rt.jobs.enqueue([job])
    return outcome.kind


def policy(rt: Runtime) -> RetryPolicy:
    s = rt.settings
    return RetryPolicy(
        base=s.webhook_retry_base, cap=s.webhook_retry_cap, window=s.webhook_retry_window
    )


async def send(
    http: httpx.AsyncClient, claim: delivery_service.Claim, timeout: float
) -> delivery_service.Outcome:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(claim.secret, claim.body),
        "X-Unlimcall-Event": claim.event_type,
        "X-Unlimcall-Delivery": claim.delivery_id,
    }
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        async with asyncio.timeout(timeout):
            async with http.stream(
                "POST", claim.target_url, content=claim.body, headers=headers
            ) as resp:
                kept = bytearray()
                async for chunk in resp.aiter_bytes():
                    kept += chunk
                    if len(kept) >= delivery_service.BODY_KEEP:
                        break
                text = bytes(kept[: delivery_service.BODY_KEEP]).decode("utf-8", "replace")
                return delivery_service.Outcome(resp.status_code, elapsed(), None, text)
    except TimeoutError:
        return delivery_service.Outcome(None, elapsed(), f"timeout after {timeout:g}s", None)
    except httpx.HTTPError as exc:
        return delivery_service.Outcome(
            None, elapsed(), f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__, None
        )


# Overdue by more than this (real seconds), a step or delivery is presumed to have lost its
# job, and the sweep enqueues a recovery job.
SWEEP_GRACE = 2.0
# Recovery job ids are unique per window of this many real seconds: a job stuck "in
# progress" in arq (its worker was killed) cannot block recovery, yet a long backlog gets
# at most one extra job per item per window. Extra jobs are harmless: steps and attempts
# are claimed in the database.
SWEEP_BUCKET = 30.0


async def sweep_once(rt: Runtime) -> tuple[int, int]:
    """Re-enqueue call steps and deliveries that are overdue: their jobs were lost
    (Redis restarted, worker killed)."""
    before = rt.clock.now() - SWEEP_GRACE * rt.clock.scale
    async with read(rt.engine) as conn:
        calls = await call_service.due_calls(conn, before)
        dues = await delivery_service.due(conn, before)
    tag = f"sweep{int(time.time() // SWEEP_BUCKET)}"
    jobs: list[JobSpec] = [call_service.job_for(c.id, c.state, 0.0) for c in calls]
    jobs += [delivery_job(d.id, d.attempts + 1) for d in dues]
    if jobs:
        await rt.jobs.enqueue([replace(j, job_id=f"{j.job_id}:{tag}") for j in jobs])
    return len(calls), len(dues)


async def sweep_forever(rt: Runtime) -> None:
    while True:
        await asyncio.sleep(rt.settings.sweep_interval)
        try:
            calls, dues = await sweep_once(rt)
            if calls or dues:
                log.info("sweep re-enqueued %d call steps and %d deliveries", calls, dues)
        except Exception:  # keep sweeping whatever one round hit
            log.exception("sweep failed")
