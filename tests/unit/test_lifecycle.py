import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unlimcall_sandbox.server import lifecycle
from unlimcall_sandbox.server.lifecycle import FORCED, TABLE, Plan, next_state, plan_call

DECLARED = {(t.source, t.target) for t in TABLE}


def walk(plan: lifecycle.Plan) -> list[str]:
    state, seen = lifecycle.QUEUED, [lifecycle.QUEUED]
    while (step := next_state(state, plan)) is not None:
        assert (state, step[0]) in DECLARED
        assert step[1] >= 0
        state = step[0]
        seen.append(state)
    return seen


def timed_walk(plan: lifecycle.Plan) -> list[tuple[str, int]]:
    """(state, sandbox seconds spent in it) along the whole walk."""
    state, out = lifecycle.QUEUED, []
    while (step := next_state(state, plan)) is not None:
        out.append((state, step[1]))
        state = step[0]
    return [*out, (state, 0)]


def plan(outcome: str, ring: int = 7, talk: int = 0) -> Plan:
    return Plan(
        outcome=outcome, scenario="normal", ring_sec=ring, talk_sec=talk, sentiment="neutral"
    )


@pytest.mark.parametrize(("number", "expected"), sorted(FORCED.items()))
def test_forcing_numbers(number: str, expected: tuple[str, str]) -> None:
    plan = plan_call(0, 1, number)
    assert (plan.outcome, plan.scenario) == expected
    assert walk(plan) == ["queued", "ringing", plan.outcome, "ended"]
    assert lifecycle.events_for(plan)[-1] == "call.ended"
    assert lifecycle.events_for(plan).count("call.ended") == 1


@given(
    st.integers(),
    st.integers(min_value=1, max_value=10**9),
    st.sampled_from(["+14155551234", "+442071838750", "+4930123456", "+15005550005"]),
)
def test_plans_are_seeded_and_walk_the_table(seed: int, seq: int, number: str) -> None:
    plan = plan_call(seed, seq, number)
    assert plan == plan_call(seed, seq, number)
    assert plan.outcome in lifecycle.OUTCOMES
    assert (plan.talk_sec > 0) == (plan.outcome == lifecycle.ANSWERED)
    assert walk(plan)[-1] == "ended"


def test_outcomes_vary_with_the_seed() -> None:
    outcomes = {plan_call(seed, 1, "+14155551234").outcome for seed in range(200)}
    assert outcomes == set(lifecycle.OUTCOMES)


def test_unknown_state_is_refused() -> None:
    with pytest.raises(lifecycle.IllegalTransition):
        next_state("on_hold", plan_call(0, 1, "+14155551234"))
    assert next_state("ended", plan_call(0, 1, "+14155551234")) is None


def test_the_table_is_the_lifecycle() -> None:
    """Every declared move is taken by some plan, and nothing else ever is."""
    taken = set()
    for outcome in lifecycle.OUTCOMES:
        path = walk(plan(outcome, talk=30 if outcome == lifecycle.ANSWERED else 0))
        taken |= set(itertools.pairwise(path))
    assert taken == DECLARED
    assert {
        ("queued", "ringing"),
        *(("ringing", o) for o in lifecycle.OUTCOMES),
        *((o, "ended") for o in lifecycle.OUTCOMES),
    } == DECLARED


def test_time_in_each_state_comes_from_the_plan() -> None:
    assert timed_walk(plan(lifecycle.ANSWERED, ring=9, talk=65)) == [
        ("queued", lifecycle.SETUP_SEC),
        ("ringing", 9),
        ("answered", 65),
        ("ended", 0),
    ]
    assert timed_walk(plan(lifecycle.BUSY, ring=3)) == [
        ("queued", lifecycle.SETUP_SEC),
        ("ringing", 3),
        ("busy", 0),
        ("ended", 0),
    ]


@pytest.mark.parametrize("outcome", ["ended", "queued", "ringing", "voicemail"])
def test_a_plan_whose_outcome_is_no_way_out_of_ringing_is_refused(outcome: str) -> None:
    assert next_state("queued", plan(outcome)) == ("ringing", lifecycle.SETUP_SEC)
    with pytest.raises(lifecycle.IllegalTransition):
        next_state("ringing", plan(outcome))
