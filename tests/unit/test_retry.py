import random

from hypothesis import given
from hypothesis import strategies as st

from unlimcall_sandbox.server.retry import RetryPolicy, jitter_rng

POLICY = RetryPolicy()


def test_backoff_doubles_then_caps() -> None:
    assert [POLICY.backoff(n) for n in range(1, 6)] == [30, 60, 120, 240, 480]
    assert POLICY.backoff(30) == 3 * 3600
    assert POLICY.backoff(10_000) == 3 * 3600


def test_jitter_is_seeded() -> None:
    a = POLICY.next_attempt_at(3, 0, 100, jitter_rng(1, "d", 3))
    b = POLICY.next_attempt_at(3, 0, 100, jitter_rng(1, "d", 3))
    c = POLICY.next_attempt_at(3, 0, 100, jitter_rng(2, "d", 3))
    assert a == b != c


@given(st.integers(min_value=1, max_value=200))
def test_backoff_is_monotone_and_bounded(n: int) -> None:
    assert POLICY.backoff(n) <= POLICY.backoff(n + 1) <= POLICY.cap


@given(st.floats(min_value=0, max_value=1e9), st.integers(min_value=0, max_value=2**32))
def test_a_whole_schedule_stays_in_the_window(first: float, seed: int) -> None:
    rng = random.Random(seed)
    last, attempt, times = first, 1, [first]
    while (nxt := POLICY.next_attempt_at(attempt, first, last, rng)) is not None:
        assert last < nxt <= first + POLICY.window
        assert nxt - last <= POLICY.cap * 1.2
        times.append(nxt)
        last, attempt = nxt, attempt + 1
    assert times[-1] == first + POLICY.window
    assert 10 < len(times) < 40
