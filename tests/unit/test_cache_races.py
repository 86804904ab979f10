"""The per-process caches (tokens, fault rules) against invalidations that land while a
database read is in flight: on PostgreSQL reads run on pooled connections and may finish
in any order, so an invalidation must win over every read that started before it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from unlimcall_sandbox.server.auth import PORTAL_PREFIX, TokenVerifier, hash_secret
from unlimcall_sandbox.server.clock import Clock
from unlimcall_sandbox.server.errors import Unauthorized
from unlimcall_sandbox.server.services.faults import FaultBook


class GatedReads:
    """Answers each read with the state current when the read *started*, but only once
    the test opens that read's gate: the way a query on a pooled connection sees the
    snapshot it began with and can finish after a later one."""

    def __init__(self, rows: list[Sequence[Any]]) -> None:
        self.rows = rows
        self.gates: list[asyncio.Event] = []

    async def all(self, stmt: Any, params: dict[str, Any]) -> Sequence[Sequence[Any]]:
        snapshot = list(self.rows)
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return snapshot

    async def one_or_none(self, stmt: Any, params: dict[str, Any]) -> Sequence[Any] | None:
        rows = await self.all(stmt, params)
        return rows[0] if rows else None


async def until(predicate: Any) -> None:
    for _ in range(100):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


def fault_row(rule_id: str) -> tuple[Any, ...]:
    return (rule_id, "api", "listAgents", None, "latency", '{"minMs": 1, "maxMs": 1}', 1.0, None)


async def test_a_rule_created_during_a_refresh_is_seen_by_the_next_request() -> None:
    reads = GatedReads([])
    book = FaultBook(db=reads, seed=1)  # type: ignore[arg-type]
    before = asyncio.ensure_future(book.needs_account("api", "listAgents"))
    await until(lambda: len(reads.gates) == 1)
    reads.rows = [fault_row("f1")]  # the rule commits while the old read is in flight
    book.invalidate()
    after = asyncio.ensure_future(book._all())
    await until(lambda: len(reads.gates) == 2)  # a fresh read, not the old one joined
    reads.gates[1].set()
    assert [r.id for r in await after] == ["f1"]
    reads.gates[0].set()  # the stale read finishes last ...
    assert await before is False
    assert [r.id for r in await book._all()] == ["f1"]  # ... and is not cached
    assert len(reads.gates) == 2


async def test_concurrent_requests_share_one_refresh() -> None:
    reads = GatedReads([fault_row("f1")])
    book = FaultBook(db=reads, seed=1)  # type: ignore[arg-type]
    waiters = [asyncio.ensure_future(book._all()) for _ in range(5)]
    await until(lambda: len(reads.gates) == 1)
    await asyncio.sleep(0)
    assert len(reads.gates) == 1
    reads.gates[0].set()
    assert [[r.id for r in await w] for w in waiters] == [["f1"]] * 5


def token_row(token: str) -> tuple[Any, ...]:
    return ("tok_1", hash_secret(token), 7, "read", None, "active", "Acme", "a@example.com")


async def test_a_revocation_during_a_lookup_is_not_undone_by_it() -> None:
    token = PORTAL_PREFIX + "x" * 40
    header = f"Bearer {token}"
    reads = GatedReads([token_row(token)])
    verifier = TokenVerifier(reads, ttl=60, clock=Clock(1.0))  # type: ignore[arg-type]
    before = asyncio.ensure_future(verifier.authenticate(header, None))
    await until(lambda: len(reads.gates) == 1)
    reads.rows = []  # revoked and committed while the first lookup is in flight
    verifier.invalidate_token("tok_1")
    after = asyncio.ensure_future(verifier.authenticate(header, None))
    await until(lambda: len(reads.gates) == 2)  # its own lookup, not the older one
    reads.gates[1].set()
    reads.gates[0].set()
    assert (await before).account_id == 7  # it started before the revocation
    try:
        await after
    except Unauthorized:
        pass
    else:
        raise AssertionError("a revoked token was accepted")
    try:  # the cache holds the fresh answer, not the stale one that finished last
        await verifier.authenticate(header, None)
    except Unauthorized:
        pass
    else:
        raise AssertionError("a stale lookup was cached")
    assert len(reads.gates) == 2
