"""``Fairness``: per-account and per-hook caps on a worker's in-flight webhook attempts."""

from __future__ import annotations

from unlimcall_sandbox.workers.delivery import Fairness


def test_caps_per_account_and_per_hook() -> None:
    fair = Fairness(per_account=3, per_hook=2)
    assert fair.admit((1, "h1"))
    assert fair.admit((1, "h1"))
    assert not fair.admit((1, "h1"))  # the hook is at its cap
    assert fair.admit((1, "h2"))
    assert not fair.admit((1, "h3"))  # the account is at its cap
    assert fair.admit((2, "h9"))  # another account is not held back


def test_waiting_attempts_are_admitted_in_order_as_their_account_frees() -> None:
    fair = Fairness(per_account=2, per_hook=1)
    assert fair.admit((1, "a")) and fair.admit((1, "b"))
    fair.wait((1, "a"), "d1")  # hook a is busy
    fair.wait((1, "c"), "d2")
    fair.wait((1, "c"), "d2")  # re-enqueued while waiting: waits once
    fair.wait((1, "d"), "d3")
    assert fair.waiting_count(1) == 3
    assert fair.is_waiting("d2") and not fair.is_waiting("d9")
    assert fair.full((1, "x")) and not fair.full((2, "x"))
    # b finishes: one account place frees; d1's hook is still busy, d2 goes.
    assert fair.done((1, "b")) == [("d2", (1, "c"))]
    # a finishes: d1 may go now (hook a is free), and takes the last place.
    assert fair.done((1, "a")) == [("d1", (1, "a"))]
    assert fair.waiting_count(1) == 1
    assert fair.done((1, "c")) == [("d3", (1, "d"))]
    assert fair.done((1, "a")) == []
    assert fair.done((1, "d")) == []
    assert fair.waiting_count(1) == 0
    assert not fair.waiting_ids
    assert not fair.accounts and not fair.hooks
