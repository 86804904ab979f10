"""Fault injection rules (``/_sandbox/faults``): make API operations fail, stall or drop
the connection, and make webhook deliveries arrive duplicated, out of order, late, or with
a bad or expired signature — with a probability and an optional count.

Rules live in the database, so they reach every process; each process reads them through
a one-second cache. A rule with a count is spent with a conditional UPDATE, so N means N
firings across all processes together.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from sqlalchemy import delete, select, update

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.port import Conn, Database
from unlimcall_sandbox.server.db.tables import faults
from unlimcall_sandbox.server.errors import InvalidInput, NotFound
from unlimcall_sandbox.server.prefer import FORCEABLE, Unusable, resolve
from unlimcall_sandbox.server.services.events import EVENT_TYPES
from unlimcall_sandbox.server.structs import FaultRule

API_ACTIONS = ("error", "latency", "drop")
WEBHOOK_ACTIONS = ("duplicate", "out_of_order", "late", "bad_signature", "expired_signature")
CACHE_TTL = 1.0
# Longest delay a "late" or "out_of_order" rule may add; a delivery that such a rule could
# delay is leased this much longer, so no other worker takes it while it waits.
MAX_DELAY_MS = 10_000


class FaultCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    target: Literal["api", "webhook"] = "api"
    action: str
    operation: str | None = None
    """An operationId (api) or an event type (webhook); None: all of them."""
    customerId: str | None = None
    status: int | None = None
    error: str | None = None
    latencyMs: int | None = None
    latencyMaxMs: int | None = None
    """With latencyMs: a uniform draw between the two (a distribution, not a constant)."""
    delayMs: int | None = None
    probability: float = 1.0
    count: int | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    target: str
    operation: str | None
    account_id: int | None
    action: str
    params: dict[str, Any]
    probability: float
    counted: bool


def _validate(data: FaultCreate) -> dict[str, Any]:
    if not 0.0 <= data.probability <= 1.0:
        raise InvalidInput("probability must be between 0 and 1.")
    if data.count is not None and data.count < 1:
        raise InvalidInput("count must be at least 1 (omit it for no limit).")
    params: dict[str, Any] = {}
    if data.target == "api":
        if data.action not in API_ACTIONS:
            raise InvalidInput(f"api actions: {', '.join(API_ACTIONS)}.")
        if data.operation is not None and data.operation not in FORCEABLE:
            raise InvalidInput(f"operation must be one of {', '.join(FORCEABLE)}.")
        if data.action == "error":
            if data.operation is None:
                raise InvalidInput("an error rule needs an operation (its errors differ).")
            # Only what the contract lists for the operation (as for Prefer): a rule can
            # never make /v1 answer an undocumented status.
            try:
                forced = resolve(data.operation, data.status, data.error)
            except Unusable as exc:
                raise InvalidInput(
                    f"A fault rule can only inject an error the contract lists: {exc.reason}."
                ) from exc
            if forced is None:
                raise InvalidInput("an error rule needs a status, an error code, or both.")
            params = {"status": forced.status, "error": forced.code}
        elif data.action == "latency":
            low = data.latencyMs
            high = data.latencyMaxMs if data.latencyMaxMs is not None else low
            if low is None or high is None or not 0 <= low <= high <= 60_000:
                raise InvalidInput(
                    "latency needs latencyMs (and optionally latencyMaxMs), "
                    "0..60000 ms, min <= max."
                )
            params = {"minMs": low, "maxMs": high}
    else:
        if data.action not in WEBHOOK_ACTIONS:
            raise InvalidInput(f"webhook actions: {', '.join(WEBHOOK_ACTIONS)}.")
        if data.operation is not None and data.operation not in EVENT_TYPES:
            raise InvalidInput(f"operation must be an event type: {', '.join(EVENT_TYPES)}.")
        if data.action in ("late", "out_of_order"):
            if data.delayMs is None or not 0 < data.delayMs <= MAX_DELAY_MS:
                raise InvalidInput(f"late and out_of_order need delayMs, 1..{MAX_DELAY_MS}.")
            params = {"delayMs": data.delayMs}
    return params


def _view(row: Any) -> FaultRule:
    return FaultRule(
        id=row.id,
        target=row.target,
        operation=row.operation,
        customerId=None if row.account_id is None else str(row.account_id),
        action=row.action,
        probability=row.probability,
        remaining=row.remaining,
        fired=row.fired,
        createdAt=iso(row.created_at),
        **json.loads(row.params),
    )


async def create(conn: Conn, data: FaultCreate, account_id: int | None, now: float) -> FaultRule:
    params = _validate(data)
    fault_id = str(uuid.uuid4())
    await conn.execute(
        faults.insert().values(
            id=fault_id,
            target=data.target,
            operation=data.operation,
            account_id=account_id,
            action=data.action,
            params=json.dumps(params),
            probability=data.probability,
            remaining=data.count,
            fired=0,
            created_at=now,
        )
    )
    row = (await conn.execute(select(faults).where(faults.c.id == fault_id))).one()
    return _view(row)


async def listing(conn: Conn) -> list[FaultRule]:
    rows = await conn.execute(select(faults).order_by(faults.c.created_at, faults.c.id))
    return [_view(r) for r in rows]


async def remove(conn: Conn, fault_id: str | None) -> int:
    stmt = delete(faults) if fault_id is None else delete(faults).where(faults.c.id == fault_id)
    count = (await conn.execute(stmt)).rowcount
    if fault_id is not None and count == 0:
        raise NotFound(f"No fault rule {fault_id!r}.")
    return int(count)


_ALL_RULES = select(
    faults.c.id,
    faults.c.target,
    faults.c.operation,
    faults.c.account_id,
    faults.c.action,
    faults.c.params,
    faults.c.probability,
    faults.c.remaining,
)


def _candidates(rules: list[Rule], target: str, operation: str) -> list[Rule]:
    return [r for r in rules if r.target == target and r.operation in (None, operation)]


class FaultBook:
    """One process's view of the rules: cached for a second, spent in the database."""

    def __init__(self, db: Database, seed: int) -> None:
        self._db = db
        self._rules: list[Rule] = []
        self._expires = 0.0
        self._rng = random.Random(f"{seed}:faults")
        # Bumped by every invalidation: a refresh that an invalidation overtook is never
        # cached, and callers arriving after an invalidation never share an older refresh.
        self._generation = 0
        self._loading: asyncio.Future[list[Rule]] | None = None
        self._loading_generation = -1

    def invalidate(self) -> None:
        self._generation += 1
        self._expires = 0.0

    async def _all(self) -> list[Rule]:
        if time.monotonic() < self._expires:
            return self._rules
        if self._loading is None or self._loading_generation != self._generation:
            # One refresh per generation, shared by everyone who arrives while it runs.
            self._loading_generation = self._generation
            self._loading = asyncio.ensure_future(self._load(self._generation))
        return await asyncio.shield(self._loading)

    async def _load(self, generation: int) -> list[Rule]:
        try:
            rows = await self._db.all(_ALL_RULES, {})
        finally:
            if self._loading_generation == generation:
                self._loading = None
        rules = [
            Rule(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7] is not None)
            for r in rows
            if r[7] is None or r[7] > 0
        ]
        if generation == self._generation:
            self._rules = rules
            self._expires = time.monotonic() + CACHE_TTL
        return rules

    def quiet(self, target: str, operation: str) -> bool:
        """Known, without waiting, that no rule applies to ``operation``: the cached rules
        are fresh and none targets it. (False also when the cache needs a refresh.)"""
        if time.monotonic() >= self._expires:
            return False
        return not self._rules or not _candidates(self._rules, target, operation)

    async def may_delay_any(self) -> bool:
        """Whether any webhook rule could delay a delivery (the claim is made before the
        event type is known, so any delaying rule lengthens the lease)."""
        return any(
            r.target == "webhook" and r.action in ("late", "out_of_order")
            for r in await self._all()
        )

    async def needs_account(self, target: str, operation: str) -> bool:
        rules = await self._all()
        return any(r.account_id is not None for r in _candidates(rules, target, operation))

    async def fire(self, target: str, operation: str, account_id: int | None) -> list[Rule]:
        """The rules that fire for this request or delivery (probability and count)."""
        fired: list[Rule] = []
        rules = await self._all()
        if not rules:
            return fired
        for rule in _candidates(rules, target, operation):
            if rule.account_id is not None and rule.account_id != account_id:
                continue
            if self._rng.random() >= rule.probability:
                continue
            async with self._db.write() as conn:
                stmt = update(faults).where(faults.c.id == rule.id)
                if rule.counted:
                    stmt = stmt.where(faults.c.remaining > 0).values(
                        remaining=faults.c.remaining - 1, fired=faults.c.fired + 1
                    )
                else:
                    stmt = stmt.values(fired=faults.c.fired + 1)
                if (await conn.execute(stmt)).rowcount != 1:
                    self.invalidate()  # spent (or deleted) elsewhere
                    continue
            fired.append(rule)
        return fired

    def latency_of(self, rule: Rule) -> float:
        return self._rng.uniform(rule.params["minMs"], rule.params["maxMs"]) / 1000

    def delay_of(self, rule: Rule) -> float:
        if rule.action == "late":
            return float(rule.params["delayMs"]) / 1000
        # out_of_order: held back a random while (at least half of delayMs), so deliveries
        # sent after it overtake it.
        return self._rng.uniform(rule.params["delayMs"] / 2, rule.params["delayMs"]) / 1000
