"""The jobs: ``simulate_call``, ``deliver_event``, ``deliver_webhook``, and the periodic
sweep.

Jobs take ids, never objects, and are idempotent: arq runs a job at least once, and the
database decides what is due (conditional updates, leases).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncConnection

from unlimcall_sandbox.server.db.engine import read, write
from unlimcall_sandbox.server.egress import Egress, EgressBlocked
from unlimcall_sandbox.server.job_queue import JobSpec
from unlimcall_sandbox.server.retry import RetryPolicy
from unlimcall_sandbox.server.runtime import Runtime
from unlimcall_sandbox.server.services import calls as call_service
from unlimcall_sandbox.server.services import deliveries as delivery_service
from unlimcall_sandbox.server.services.events import delivery_job
from unlimcall_sandbox.server.services.faults import MAX_DELAY_MS, Rule
from unlimcall_sandbox.server.signing import SIGNATURE_HEADER, sign
from unlimcall_sandbox.workers.resolver import precheck

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
    """Send one due attempt of a delivery (a retry, a redelivery, a swept one), record it,
    schedule the next if any."""
    outcomes = await _deliver(ctx, lambda conn: _as_list(delivery_id))
    return outcomes[0] if outcomes else "skipped"


async def deliver_event(ctx: dict[str, Any], event_id: str) -> str:
    """Send the first attempt of every delivery of a new event: claimed in one
    transaction, sent concurrently, each recorded as soon as it is done. Every guarantee
    is per attempt, as for ``deliver_webhook``: its own lease, signature, outcome, retry."""
    outcomes = await _deliver(ctx, lambda conn: delivery_service.first_attempts(conn, event_id))
    return f"{len(outcomes)} sent"


async def _as_list(delivery_id: str) -> list[str]:
    return [delivery_id]


# Once one attempt of a batch is done, wait this long for others to finish before
# recording: the attempts done by then share one transaction.
RECORD_COALESCE = 0.005
# At most this many first attempts per deliver_event job; an event with more deliveries
# hands the rest to deliver_webhook jobs of their own.
BATCH_MAX = 20
# Webhook attempts in flight per worker process (as many as arq runs jobs at once).
IN_FLIGHT = 200


class Slots:
    """The in-flight webhook attempts of a worker, at most ``capacity``. An attempt is
    claimed (its lease starts) and timed only once it holds a slot, so waiting for one can
    neither expire a lease nor count against the webhook timeout."""

    def __init__(self, capacity: int) -> None:
        self.free = capacity
        self._changed = asyncio.Condition()

    async def take(self, most: int) -> int:
        """Wait for a free slot, then take up to ``most``; returns how many were taken."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.free > 0)
            n = min(most, self.free)
            self.free -= n
            return n

    async def give(self, n: int) -> None:
        async with self._changed:
            self.free += n
            self._changed.notify_all()


async def _deliver(
    ctx: dict[str, Any], which: Callable[[AsyncConnection], Awaitable[list[str]]]
) -> list[str]:
    rt = _rt(ctx)
    settings = rt.settings
    slots: Slots = ctx["slots"]
    lease = settings.webhook_timeout + LEASE_MARGIN
    if await rt.faults.may_delay_any():
        lease += MAX_DELAY_MS / 1000
    tolerance = DUE_SLACK_REAL * rt.clock.scale
    held = await slots.take(BATCH_MAX)
    claims: list[delivery_service.Claim] = []
    try:
        async with write(rt.engine) as conn:
            ids = await which(conn)
            now = rt.clock.now()
            for delivery_id in ids[:held]:
                claim = await delivery_service.claim(conn, delivery_id, now, lease, tolerance)
                if claim is not None:
                    claims.append(claim)
    finally:
        await slots.give(held - len(claims))
    if len(ids) > held:
        await rt.jobs.enqueue([delivery_job(i, 1) for i in ids[held:]])
    if not claims:
        return []
    http, egress = ctx["http"], ctx["egress"]
    pending = {
        asyncio.ensure_future(_attempt(rt, http, egress, slots, claim)): claim for claim in claims
    }
    kinds: list[str] = []
    while pending:
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if len(done) < len(pending):
            more, _ = await asyncio.wait(pending.keys() - done, timeout=RECORD_COALESCE)
            done |= more
        finished = [(pending.pop(task), task.result()) for task in done]
        jobs: list[JobSpec] = []
        async with write(rt.engine) as conn:
            for claim, outcome in finished:
                job = await delivery_service.record(
                    conn,
                    claim,
                    outcome,
                    claim.claimed_at,
                    policy(rt),
                    settings.seed,
                    rt.clock.real_delay_until,
                )
                _log_attempt(claim, outcome, job)
                kinds.append(outcome.kind)
                if job is not None:
                    jobs.append(job)
        await rt.jobs.enqueue(jobs)
    return kinds


async def _attempt(
    rt: Runtime,
    http: aiohttp.ClientSession,
    egress: Egress,
    slots: Slots,
    claim: delivery_service.Claim,
) -> delivery_service.Outcome:
    try:
        chaos = await rt.faults.fire("webhook", claim.event_type, claim.account_id)
        return await send(http, claim, rt.settings.webhook_timeout, chaos, rt, egress=egress)
    finally:
        await slots.give(1)


def _log_attempt(
    claim: delivery_service.Claim, outcome: delivery_service.Outcome, job: JobSpec | None
) -> None:
    if not delivery_log.isEnabledFor(logging.INFO):
        return
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
    *,
    egress: Egress,
) -> delivery_service.Outcome:
    """One attempt over HTTP; webhook fault rules (``chaos``) may delay it, spoil its
    signature, or send it twice. The outcome recorded is the last request's. ``http``
    must be a ``webhook_session`` of the same ``egress``: its resolver vets names, this
    vets what aiohttp connects to without asking a resolver."""
    blocked = precheck(egress, claim.target_url)
    if blocked is not None:
        return _blocked(blocked, 0)
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
        "X-Unlimcall-Hook-Id": claim.hook_id,
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
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, EgressBlocked):
            return _blocked(exc.os_error, elapsed())
        return _failed(exc, elapsed())
    except (aiohttp.ClientError, ValueError) as exc:
        # ValueError: a target URL aiohttp cannot use (the API validated it already).
        return _failed(exc, elapsed())


def _failed(exc: Exception, latency_ms: int) -> delivery_service.Outcome:
    error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
    return delivery_service.Outcome(None, latency_ms, error, None)


def _blocked(blocked: EgressBlocked, latency_ms: int) -> delivery_service.Outcome:
    # Permanent: the policy and the target stay as they are until someone changes one.
    return delivery_service.Outcome(None, latency_ms, str(blocked), None, permanent=True)


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
