import pytest
from hypothesis import given
from hypothesis import strategies as st

from unlimcall_sandbox.server import lifecycle
from unlimcall_sandbox.server.lifecycle import FORCED, TRANSITIONS, next_state, plan_call


def walk(plan: lifecycle.Plan) -> list[str]:
    state, seen = lifecycle.QUEUED, [lifecycle.QUEUED]
    while (step := next_state(state, plan)) is not None:
        assert (state, step[0]) in TRANSITIONS
        assert step[1] >= 0
        state = step[0]
        seen.append(state)
    return seen


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
