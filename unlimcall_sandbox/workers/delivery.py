"""The delivery pipeline: one webhook attempt from claim to retry, read top to bottom.

    claim    take the due attempts, each with its own lease (one transaction)
    sign     the body with the hook's secret; webhook fault rules may spoil or delay it
    send     POST over the worker's session, the egress policy checked on the target and
             on every address it resolves to; the outcome is the answer, or why there was
             none
    record   each attempt's row and where it leaves its delivery; attempts that finish
             together share one transaction
    retry    a failed attempt the policy may retry gets the job of the next one, due when
             the retry schedule says

Like svix's worker (prepare → call → handle success/failure), in one place; the arq jobs
(``workers/jobs.py``) only call ``deliver_one`` and ``deliver_first_attempts``, and the SQL
lives in the repository (``server/services/deliveries.py``).

Every guarantee holds per attempt, whether it goes out alone (a retry, a redelivery, a
swept one) or in the batch of a new event's first attempts: its own lease, signature,
outcome and retry. A batch is at most ``BATCH_MAX`` attempts, and a worker has at most
``IN_FLIGHT`` attempts out at once (``Slots``).

Fairness (issue 15, item 3): a worker also has at most ``webhook_inflight_per_account``
attempts of one account and ``webhook_inflight_per_hook`` of one hook out at once
(``Fairness``). An attempt over its account's or hook's cap is not claimed: it waits,
unleased and untimed, in the worker's memory, and goes out (claimed then) when one of its
account's attempts finishes, so a thousand dead receivers of one account hold that many
slots and no more, and never an arq job. Memory is not the record: a waiting attempt
stays due in the database, and the sweep re-enqueues it should the worker die.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from unlimcall_sandbox.server.clock import Clock
from unlimcall_sandbox.server.db.engine import read, write
from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.egress import Egress, EgressBlocked
from unlimcall_sandbox.server.job_queue import JobQueue, JobSpec
from unlimcall_sandbox.server.retry import RetryPolicy, jitter_rng
from unlimcall_sandbox.server.runtime import Runtime
from unlimcall_sandbox.server.services import deliveries as repo
from unlimcall_sandbox.server.services.deliveries import Attempt, Claim
from unlimcall_sandbox.server.services.events import delivery_job
from unlimcall_sandbox.server.services.faults import MAX_DELAY_MS, FaultBook, Rule
from unlimcall_sandbox.server.signing import SIGNATURE_HEADER, sign
from unlimcall_sandbox.workers.resolver import precheck

log = logging.getLogger("unlimcall.delivery")

USER_AGENT = "UnlimCall-Sandbox-Webhooks/1.0"
# Sandbox-time slack, in real seconds, when deciding whether something is due (clock
# reads across processes).
DUE_SLACK_REAL = 0.005
# A claimed attempt is leased for the webhook timeout plus this many seconds: long enough
# to record the outcome, short enough that a killed worker's attempt is resent soon.
LEASE_MARGIN = 5.0
# At most this many first attempts per deliver_event job; an event with more deliveries
# hands the rest to deliver_webhook jobs of their own.
BATCH_MAX = 20
# Webhook attempts in flight per worker process (as many as arq runs jobs at once).
IN_FLIGHT = 200
# Once one attempt of a batch is done, wait this long for others to finish before
# recording: the attempts done by then share one transaction.
RECORD_COALESCE = 0.005
# What is kept of a response body (DESIGN: the first 1 KiB).
BODY_KEEP = 1024
# An "expired_signature" fault signs with a timestamp this many seconds old (beyond the
# 300 s tolerance receivers are told to use).
EXPIRED_BY = 3600


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


Owner = tuple[int, str]
"""A delivery's account id and hook id."""


class Fairness:
    """The in-flight attempts of a worker per account and per hook, with a cap on each,
    and the attempts waiting for their account or hook to fall below its cap."""

    def __init__(self, per_account: int, per_hook: int) -> None:
        self.per_account = max(1, per_account)
        self.per_hook = max(1, per_hook)
        self.accounts: Counter[int] = Counter()
        self.hooks: Counter[str] = Counter()
        self.waiting: dict[int, dict[str, str]] = {}
        """account id → delivery id → hook id, in arrival order (a dict: a delivery
        re-enqueued while it waits waits once)."""
        self.waiting_ids: set[str] = set()
        self.tasks: set[asyncio.Task[object]] = set()

    def admit(self, owner: Owner) -> bool:
        """Count one more attempt of ``owner`` in flight, if both its caps allow it."""
        account, hook = owner
        if self.accounts[account] >= self.per_account or self.hooks[hook] >= self.per_hook:
            return False
        self.accounts[account] += 1
        self.hooks[hook] += 1
        return True

    def full(self, owner: Owner) -> bool:
        """Would ``owner`` be refused now (its account or hook at its cap)?"""
        account, hook = owner
        return self.accounts[account] >= self.per_account or self.hooks[hook] >= self.per_hook

    def wait(self, owner: Owner, delivery_id: str) -> None:
        self.waiting.setdefault(owner[0], {})[delivery_id] = owner[1]
        self.waiting_ids.add(delivery_id)

    def is_waiting(self, delivery_id: str) -> bool:
        """Waiting here: the sweep leaves it alone (it is not lost, only held back)."""
        return delivery_id in self.waiting_ids

    def waiting_count(self, account: int) -> int:
        return len(self.waiting.get(account, ()))

    def done(self, owner: Owner) -> list[tuple[str, Owner]]:
        """One attempt of ``owner`` finished (or was never claimed): the waiting
        deliveries of its account that the caps now admit (counted as in flight)."""
        account, hook = owner
        self.accounts[account] -= 1
        if self.accounts[account] <= 0:
            del self.accounts[account]
        self.hooks[hook] -= 1
        if self.hooks[hook] <= 0:
            del self.hooks[hook]
        queue = self.waiting.get(account)
        admitted: list[tuple[str, Owner]] = []
        if queue:
            for delivery_id, waiting_hook in list(queue.items()):
                if self.accounts[account] >= self.per_account:
                    break
                if self.admit((account, waiting_hook)):
                    del queue[delivery_id]
                    self.waiting_ids.discard(delivery_id)
                    admitted.append((delivery_id, (account, waiting_hook)))
            if not queue:
                del self.waiting[account]
        return admitted

    async def close(self) -> None:
        """Cancel the sends started for waiting attempts (they stay due in the database)."""
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(BaseException):
                await task
        self.tasks.clear()


@dataclass(frozen=True, slots=True)
class Deliverer:
    """What delivering needs, and nothing more (svix's ``WorkerContext``); one per worker
    process, built at its start-up."""

    engine: AsyncEngine
    clock: Clock
    jobs: JobQueue
    faults: FaultBook
    http: aiohttp.ClientSession
    """A ``webhook_session`` of ``egress``: its resolver vets every looked-up address."""
    egress: Egress
    slots: Slots
    retry: RetryPolicy
    seed: int
    timeout: float
    """Real seconds an attempt may take (connect, send, answer)."""
    fair: Fairness = field(default_factory=lambda: Fairness(20, 5))
    outcomes: Counter[str] = field(default_factory=Counter)
    """Attempts recorded by this worker, by outcome (``unlimcall_delivery_attempts_total``)."""

    @classmethod
    def of(
        cls, rt: Runtime, http: aiohttp.ClientSession, egress: Egress, slots: Slots
    ) -> Deliverer:
        s = rt.settings
        return cls(
            engine=rt.engine,
            clock=rt.clock,
            jobs=rt.jobs,
            faults=rt.faults,
            http=http,
            egress=egress,
            slots=slots,
            retry=RetryPolicy(
                base=s.webhook_retry_base, cap=s.webhook_retry_cap, window=s.webhook_retry_window
            ),
            seed=s.resolved_seed,
            timeout=s.webhook_timeout,
            fair=Fairness(s.webhook_inflight_per_account, s.webhook_inflight_per_hook),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt got: an answer (status, latency, first KiB of the body) or none
    (error), and whether no retry can mend it."""

    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None
    permanent: bool = False
    """A failure no retry can mend (the egress policy refused the target)."""

    @property
    def kind(self) -> str:
        """delivered (2xx) | permanent (4xx, refused) | retry (anything else)"""
        if self.permanent:
            return "permanent"
        code = self.status_code
        if code is not None and 200 <= code < 300:
            return "delivered"
        if code is not None and 400 <= code < 500:
            return "permanent"
        return "retry"


Pick = Callable[[Conn], Awaitable[list[str]]]
"""Which deliveries a job is for, read in the claiming transaction."""


async def deliver_one(d: Deliverer, delivery_id: str) -> str | None:
    """The due attempt of one delivery; its outcome kind, None when nothing was due (or
    it waits: its account or hook is at its cap — judged on a read, so a backlog of one
    account's waiting attempts costs no write transaction and no slot)."""
    async with read(d.engine) as conn:
        owner = (await repo.owners(conn, [delivery_id])).get(delivery_id)
    if owner is None:
        return None
    if not d.fair.admit(owner):
        d.fair.wait(owner, delivery_id)
        return None
    kinds = await deliver(d, lambda conn: _just(delivery_id), admitted=owner)
    return kinds[0] if kinds else None


async def deliver_first_attempts(d: Deliverer, event_id: str) -> list[str]:
    """The first attempt of every delivery of a new event, sent concurrently."""
    return await deliver(d, lambda conn: repo.first_attempts(conn, event_id))


async def _just(delivery_id: str) -> list[str]:
    return [delivery_id]


async def deliver(d: Deliverer, pick: Pick, admitted: Owner | None = None) -> list[str]:
    """Claim, send, record and schedule the attempts ``pick`` names; their outcome kinds,
    in the order they were recorded."""
    claims = await claim_due(d, pick, admitted)
    sending = {asyncio.ensure_future(attempt_claimed(d, c)): c for c in claims}
    kinds: list[str] = []
    while sending:
        done, _ = await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
        if len(done) < len(sending):
            more, _ = await asyncio.wait(sending.keys() - done, timeout=RECORD_COALESCE)
            done |= more
        kinds += await record(d, [(sending.pop(task), task.result()) for task in done])
    return kinds


# -- claim ---------------------------------------------------------------------------------
async def claim_due(d: Deliverer, pick: Pick, admitted: Owner | None = None) -> list[Claim]:
    """Lease the due attempts ``pick`` names, as many as there are free slots (at most a
    batch) and their account's and hook's caps admit; those over a cap wait (unleased)
    in ``d.fair``, the rest go to jobs of their own. Each claim keeps its slot until
    sent. ``admitted``: ``pick`` names one delivery, of this owner, that ``d.fair`` has
    admitted already."""
    lease = d.timeout + LEASE_MARGIN
    if await d.faults.may_delay_any():
        lease += MAX_DELAY_MS / 1000
    tolerance = DUE_SLACK_REAL * d.clock.scale
    held = await d.slots.take(BATCH_MAX)
    claims: list[Claim] = []
    counted: dict[str, Owner] = {}  # admitted by d.fair, not (yet) claimed
    if admitted is not None:
        counted[""] = admitted  # until its row is found (it may be gone)
    try:
        async with write(d.engine) as conn:
            ids = await pick(conn)
            owners = await repo.owners(conn, ids)
            now, real_now = d.clock.now(), d.clock.real_now()
            for delivery_id in ids[:held]:
                owner = owners.get(delivery_id)
                if owner is None:
                    continue
                if admitted is not None:
                    del counted[""]
                elif not d.fair.admit(owner):
                    d.fair.wait(owner, delivery_id)
                    continue
                counted[delivery_id] = owner
                got = await repo.claim(conn, delivery_id, now, real_now, lease, tolerance)
                if got is not None:
                    claims.append(got)
    except BaseException:
        await d.slots.give(held)  # nothing was claimed: the transaction did not commit
        for owner in counted.values():
            _finished(d, owner)
        raise
    await d.slots.give(held - len(claims))
    for claimed in claims:
        del counted[claimed.delivery_id]
    for owner in counted.values():
        _finished(d, owner)
    rest = []
    for delivery_id in ids[held:]:
        owner = owners.get(delivery_id)
        if owner is not None and admitted is None and d.fair.full(owner):
            d.fair.wait(owner, delivery_id)  # no job: it goes out when its account frees
        else:
            rest.append(delivery_id)
    if rest:
        await d.jobs.enqueue([delivery_job(i, 1) for i in rest])
    return claims


def _finished(d: Deliverer, owner: Owner) -> None:
    """An attempt of ``owner`` is no longer in flight: send the waiting ones it frees."""
    for delivery_id, admitted in d.fair.done(owner):
        task: asyncio.Task[object] = asyncio.ensure_future(_send_admitted(d, delivery_id, admitted))
        d.fair.tasks.add(task)
        task.add_done_callback(d.fair.tasks.discard)


async def _send_admitted(d: Deliverer, delivery_id: str, owner: Owner) -> list[str]:
    try:
        return await deliver(d, lambda conn: _just(delivery_id), admitted=owner)
    except Exception:  # it stays due in the database: the sweep sends it
        log.exception("waiting delivery %s failed to go out", delivery_id)
        return []


# -- sign and send ------------------------------------------------------------------------
async def attempt_claimed(d: Deliverer, claim: Claim) -> Outcome:
    """One claimed attempt, with the fault rules that fire for it; frees its slot."""
    try:
        chaos = await d.faults.fire("webhook", claim.event_type, claim.account_id)
        return await send(d, claim, chaos)
    finally:
        await d.slots.give(1)
        _finished(d, (claim.account_id, claim.hook_id))


async def send(d: Deliverer, claim: Claim, chaos: Sequence[Rule] = ()) -> Outcome:
    """Sign and POST one attempt. Fault rules (``chaos``) may spoil its signature, delay
    it, or send it twice; the outcome is the last request's. A target the egress policy
    refuses gets no request: its host is judged here (aiohttp asks no resolver about IP
    literals) and every looked-up address by the session's resolver."""
    blocked = precheck(d.egress, claim.target_url)
    if blocked is not None:
        return _blocked(blocked, 0)
    actions = {r.action: r for r in chaos}
    secret, timestamp = claim.secret, int(d.clock.real_now())
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
        if action in actions:
            await asyncio.sleep(d.faults.delay_of(actions[action]))
    outcome = await _post(d, claim, headers)
    if "duplicate" in actions:
        outcome = await _post(d, claim, headers)
    return outcome


async def _post(d: Deliverer, claim: Claim, headers: dict[str, str]) -> Outcome:
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        async with asyncio.timeout(d.timeout):
            async with d.http.post(
                claim.target_url, data=claim.body, headers=headers, allow_redirects=False
            ) as resp:
                kept = bytearray()
                while len(kept) < BODY_KEEP:
                    chunk = await resp.content.read(BODY_KEEP - len(kept))
                    if not chunk:
                        break
                    kept += chunk
                text = bytes(kept).decode("utf-8", "replace")
                return Outcome(resp.status, elapsed(), None, text)
    except TimeoutError:
        return Outcome(None, elapsed(), f"timeout after {d.timeout:g}s", None)
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, EgressBlocked):
            return _blocked(exc.os_error, elapsed())
        return _failed(exc, elapsed())
    except (aiohttp.ClientError, ValueError) as exc:
        # ValueError: a target URL aiohttp cannot use (the API validated it already).
        return _failed(exc, elapsed())


def _failed(exc: Exception, latency_ms: int) -> Outcome:
    error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
    return Outcome(None, latency_ms, error, None)


def _blocked(blocked: EgressBlocked, latency_ms: int) -> Outcome:
    # Permanent: the policy and the target stay as they are until someone changes one.
    return Outcome(None, latency_ms, str(blocked), None, permanent=True)


# -- record and schedule the retry ----------------------------------------------------------
def judge(
    claim: Claim, outcome: Outcome, retry: RetryPolicy, seed: int, recorded_at: float
) -> Attempt:
    """The attempt as it is stored (at wall time ``recorded_at``): its outcome, and when
    the next one is due (a retryable failure inside the retry window; seeded jitter, so a
    run replays)."""
    kind = outcome.kind
    next_at: float | None = None
    if kind == "retry":
        rng = jitter_rng(seed, claim.delivery_id, claim.attempt)
        next_at = retry.next_attempt_at(
            claim.attempt, claim.first_attempt_at, claim.claimed_at, rng
        )
        if next_at is None:
            kind = "exhausted"
    return Attempt(
        delivery_id=claim.delivery_id,
        number=claim.attempt,
        attempted_at=claim.claimed_at,
        recorded_at=recorded_at,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        error=outcome.error,
        response_body=outcome.response_body,
        outcome=kind,
        next_attempt_at=next_at,
    )


async def record(d: Deliverer, finished: list[tuple[Claim, Outcome]]) -> list[str]:
    """Store finished attempts in one transaction, then enqueue the retries they plan;
    returns their outcome kinds."""
    now = d.clock.real_now()
    stored = [(claim, judge(claim, outcome, d.retry, d.seed, now)) for claim, outcome in finished]
    retries: list[JobSpec] = []
    async with write(d.engine) as conn:
        for _, row in stored:
            await repo.record(conn, row)
            if row.next_attempt_at is not None:
                delay = d.clock.real_delay_until(row.next_attempt_at)
                retries.append(delivery_job(row.delivery_id, row.number + 1, delay))
    await d.jobs.enqueue(retries)
    d.outcomes.update(row.outcome for _, row in stored)
    if log.isEnabledFor(logging.INFO):
        delays = iter(retries)
        for claim, row in stored:
            retry_in = None if row.next_attempt_at is None else next(delays).delay
            _log_attempt(claim, row, retry_in)
    return [row.outcome for _, row in stored]


def _log_attempt(claim: Claim, row: Attempt, retry_in: float | None) -> None:
    log.info(
        "delivery_attempt",
        extra={
            "delivery_id": row.delivery_id,
            "hook_id": claim.hook_id,
            "account_id": claim.account_id,
            "event": claim.event_type,
            "attempt": row.number,
            "status_code": row.status_code,
            "duration_ms": row.latency_ms,
            "error": row.error,
            "outcome": row.outcome,
            "retry_in_sec": None if retry_in is None else round(retry_in, 3),
        },
    )
