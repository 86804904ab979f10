"""Fault rules' seeded draws: a latency distribution, an out-of-order hold-back."""

from __future__ import annotations

from typing import Any, cast

from unlimcall_sandbox.server.services.faults import FaultBook, Rule


def book(seed: int) -> FaultBook:
    # The draws do not touch the database.
    return FaultBook(cast(Any, None), seed)


def latency(low: int, high: int) -> Rule:
    return Rule(
        "r1", "api", "listAgents", None, "latency", {"minMs": low, "maxMs": high}, 1.0, False
    )


def held(action: str, delay_ms: int) -> Rule:
    return Rule("r2", "webhook", None, None, action, {"delayMs": delay_ms}, 1.0, False)


def test_latency_is_drawn_between_min_and_max_and_replays_per_seed() -> None:
    a = book(3)
    series = [a.latency_of(latency(50, 150)) for _ in range(50)]
    assert all(0.05 <= d <= 0.15 for d in series)
    assert len(set(series)) > 40  # a distribution, not a constant
    assert max(series) - min(series) > 0.05
    b = book(3)
    assert [b.latency_of(latency(50, 150)) for _ in range(50)] == series
    assert [book(4).latency_of(latency(50, 150)) for _ in range(50)] != series


def test_a_fixed_latency_is_exact() -> None:
    assert {book(1).latency_of(latency(300, 300)) for _ in range(5)} == {0.3}


def test_late_waits_its_delay_and_out_of_order_at_least_half_of_it() -> None:
    f = book(9)
    assert f.delay_of(held("late", 700)) == 0.7
    holds = [f.delay_of(held("out_of_order", 1500)) for _ in range(50)]
    assert all(0.75 <= h <= 1.5 for h in holds)
    assert len(set(holds)) > 40
