"""Webhook retry schedule (pure): exponential backoff with jitter, bounded by a window.

Attempt n (1-based) failed at ``last``: the next one is ``base × 2^(n-1)`` sandbox seconds
later, capped at ``cap``, times a jitter factor in [0.8, 1.2). Nothing is scheduled past
``first + window``: the attempt that would overshoot is moved to the window's end, and an
attempt at or after the end is the last.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: float = 30.0
    cap: float = 3 * 3600.0
    window: float = 24 * 3600.0

    def backoff(self, attempt: int) -> float:
        """Un-jittered delay after failed attempt ``attempt`` (1-based); monotone."""
        exponent = min(attempt - 1, 60)
        return float(min(self.cap, self.base * (2.0**exponent)))

    def next_attempt_at(
        self, attempt: int, first_at: float, last_at: float, rng: random.Random
    ) -> float | None:
        """When to try again after failed attempt ``attempt``; ``None``: give up."""
        deadline = first_at + self.window
        if last_at >= deadline:
            return None
        delay = self.backoff(attempt) * rng.uniform(0.8, 1.2)
        return min(last_at + delay, deadline)


def jitter_rng(seed: int, delivery_id: str, attempt: int) -> random.Random:
    return random.Random(f"{seed}:retry:{delivery_id}:{attempt}")
