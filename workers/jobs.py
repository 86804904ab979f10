"""The jobs: ``simulate_call``, ``deliver_webhook``, and the periodic sweep.

Jobs take ids, never objects, and are idempotent: arq runs a job at least once, and the
database decides what is due (conditional updates, leases).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import aiohttp

from server.db.engine import read, write
from server.jobs import JobSpec
from server.retry import RetryPolicy
from server.runtime import Runtime
from server.services import calls as call_service
from server.services import deliveries as delivery_service
from server.services.events import delivery_job
from server.services.faults import MAX_DELAY_MS, Rule
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
# An "expired_signature" fault signs with a timestamp this many seconds old (beyond the
# 300 s tolerance receivers are told to use).
EXPIRED_BY = 3600


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
    lease = settings.webhook_timeout + LEASE_MARGIN
    if await rt.faults.may_delay_any():
        lease += MAX_DELAY_MS / 1000
    async with write(rt.engine) as conn:
        claim = await delivery_service.claim(
            conn,
            delivery_id,
            rt.clock.now(),
            lease,
            tolerance=DUE_SLACK_REAL * rt.clock.scale,
        )
    if claim is None:
        return "skipped"
    chaos = await rt.faults.fire("webhook", claim.event_type, claim.account_id)
    outcome = await send(ctx["http"], claim, settings.webhook_timeout, chaos, rt)
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
    http: aiohttp.ClientSession,
    claim: delivery_service.Claim,
    timeout: float,
    chaos: Sequence[Rule] = (),
    rt: Runtime | None = None,
) -> delivery_service.Outcome:
    """One attempt over HTTP; webhook fault rules (``chaos``) may delay it, spoil its
    signature, or send it twice. The outcome recorded is the last request's."""
    actions = {r.action: r for r in chaos}
    secret, timestamp = claim.secret, int(time.time())
    if "bad_signature" in actions:
        secret = "whsec_not_" + claim.secret
    if "expired_signature" in actions:
        timestamp -= EXPIRED_BY
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, claim.body, timestamp),
        "X-Unlimcall-Event": claim.event_type,
        "X-Unlimcall-Delivery": claim.delivery_id,
    }
    for action in ("late", "out_of_order"):
        if action in actions and rt is not None:
            await asyncio.sleep(rt.faults.delay_of(actions[action]))
    outcome = await _post(http, claim, headers, timeout)
    if "duplicate" in actions:
        outcome = await _post(http, claim, headers, timeout)
    return outcome


async def _post(
    http: aiohttp.ClientSession,
    claim: delivery_service.Claim,
    headers: dict[str, str],
    timeout: float,
) -> delivery_service.Outcome:
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        async with asyncio.timeout(timeout):
            async with http.post(
                claim.target_url, data=claim.body, headers=headers, allow_redirects=False
            ) as resp:
                kept = bytearray()
                while len(kept) < delivery_service.BODY_KEEP:
                    chunk = await resp.content.read(delivery_service.BODY_KEEP - len(kept))
                    if not chunk:
                        break
                    kept += chunk
                text = bytes(kept).decode("utf-8", "replace")
                return delivery_service.Outcome(resp.status, elapsed(), None, text)
    except TimeoutError:
        return delivery_service.Outcome(None, elapsed(), f"timeout after {timeout:g}s", None)
    except (aiohttp.ClientError, ValueError) as exc:
        # ValueError: a target URL aiohttp cannot use (the API validated it already).
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
