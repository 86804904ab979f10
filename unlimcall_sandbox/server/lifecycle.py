"""The call lifecycle as data: a declared transition table, a pure ``next_state`` and the
seeded plan that decides how a call will go. How fast it advances is the clock's business.

    queued → ringing → answered | busy | no_answer | failed → ended
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

QUEUED: Final = "queued"
RINGING: Final = "ringing"
ANSWERED: Final = "answered"
BUSY: Final = "busy"
NO_ANSWER: Final = "no_answer"
FAILED: Final = "failed"
ENDED: Final = "ended"

OUTCOMES: Final = (ANSWERED, BUSY, NO_ANSWER, FAILED)

DISPOSITIONS: Final = {ANSWERED: "ANSWERED", BUSY: "BUSY", NO_ANSWER: "NO ANSWER", FAILED: "FAILED"}

# Scenarios an answered call can play out as (forced by the DESIGN's test numbers).
NORMAL: Final = "normal"
VOICEMAIL: Final = "voicemail"
TRANSFERRED: Final = "transferred"
DNC: Final = "dnc"
LEAD_COMPLETED: Final = "lead_completed"

# Sandbox seconds from queued to the first ring (dial set-up).
SETUP_SEC: Final = 1

REJECT_NUMBER: Final = "+15005550001"
FORCED: Final[dict[str, tuple[str, str]]] = {
    "+15005550002": (BUSY, NORMAL),
    "+15005550003": (NO_ANSWER, NORMAL),
    "+15005550004": (FAILED, NORMAL),
    "+15005550005": (ANSWERED, VOICEMAIL),
    "+15005550006": (ANSWERED, TRANSFERRED),
    "+15005550007": (ANSWERED, DNC),
    "+15005550008": (ANSWERED, LEAD_COMPLETED),
}


class IllegalTransition(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Plan:
    """How one call will go, fixed when it is queued."""

    outcome: str
    scenario: str
    ring_sec: int
    talk_sec: int
    sentiment: str


def _setup(plan: Plan) -> int:
    return SETUP_SEC


def _ringing(plan: Plan) -> int:
    return plan.ring_sec


def _talking(plan: Plan) -> int:
    return plan.talk_sec


def _at_once(plan: Plan) -> int:
    return 0


@dataclass(frozen=True, slots=True)
class Transition:
    """A declared move ``source → target``."""

    source: str
    target: str
    dwell: Callable[[Plan], int]
    """Sandbox seconds a call with this plan stays in ``source`` before the move."""


# The declared table ``next_state`` walks. A state with one way out takes it; a state with
# several (ringing) takes the one its plan's outcome names. A state with none is final.
TABLE: Final[tuple[Transition, ...]] = (
    Transition(QUEUED, RINGING, _setup),
    Transition(RINGING, ANSWERED, _ringing),
    Transition(RINGING, BUSY, _ringing),
    Transition(RINGING, NO_ANSWER, _ringing),
    Transition(RINGING, FAILED, _ringing),
    Transition(ANSWERED, ENDED, _talking),
    Transition(BUSY, ENDED, _at_once),
    Transition(NO_ANSWER, ENDED, _at_once),
    Transition(FAILED, ENDED, _at_once),
)
_EXITS: Final[dict[str, tuple[Transition, ...]]] = {
    state: tuple(t for t in TABLE if t.source == state)
    for state in dict.fromkeys(s for t in TABLE for s in (t.source, t.target))
}


def plan_call(seed: int, call_seq: int, to_number: str) -> Plan:
    """The seeded plan for a call: same seed, same sequence number, same destination → same."""
    rng = random.Random(f"{seed}:call:{call_seq}:{to_number}")
    outcome, scenario = FORCED.get(to_number) or _random_outcome(rng)
    if outcome == ANSWERED:
        ring = rng.randint(3, 18)
        lo, hi = {
            NORMAL: (20, 420),
            VOICEMAIL: (15, 45),
            TRANSFERRED: (60, 300),
            DNC: (8, 40),
            LEAD_COMPLETED: (90, 480),
        }[scenario]
        talk = rng.randint(lo, hi)
    elif outcome == BUSY:
        ring, talk = rng.randint(1, 4), 0
    elif outcome == NO_ANSWER:
        ring, talk = rng.randint(25, 45), 0
    else:
        ring, talk = rng.randint(0, 3), 0
    sentiment = {
        VOICEMAIL: "neutral",
        DNC: "negative",
        LEAD_COMPLETED: "positive",
        TRANSFERRED: "positive",
    }.get(scenario) or rng.choice(("positive", "neutral", "neutral", "negative"))
    if outcome != ANSWERED:
        sentiment = "neutral"
    return Plan(
        outcome=outcome, scenario=scenario, ring_sec=ring, talk_sec=talk, sentiment=sentiment
    )


def _random_outcome(rng: random.Random) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.70:
        return ANSWERED, NORMAL
    if roll < 0.82:
        return NO_ANSWER, NORMAL
    if roll < 0.94:
        return BUSY, NORMAL
    return FAILED, NORMAL


def next_state(state: str, plan: Plan) -> tuple[str, int] | None:
    """The state after ``state`` and the sandbox seconds spent in ``state`` before it;
    ``None`` once the call has ended."""
    exits = _EXITS.get(state)
    if exits is None:
        raise IllegalTransition(f"unknown state {state!r}")
    if not exits:
        return None
    if len(exits) > 1:
        exits = tuple(t for t in exits if t.target == plan.outcome)
        if not exits:
            raise IllegalTransition(f"{state} → {plan.outcome}")
    [move] = exits
    return move.target, move.dwell(plan)


def hangup_reason(plan: Plan) -> str:
    if plan.outcome == BUSY:
        return "busy"
    if plan.outcome == NO_ANSWER:
        return "no_answer"
    if plan.outcome == FAILED:
        return "failed"
    return {
        VOICEMAIL: "voicemail",
        TRANSFERRED: "transferred",
        DNC: "contact_hangup",
        LEAD_COMPLETED: "agent_hangup",
    }.get(plan.scenario, "agent_hangup" if plan.talk_sec % 2 else "contact_hangup")


def disposition_code(plan: Plan) -> str:
    return {
        VOICEMAIL: "VOICEMAIL",
        TRANSFERRED: "TRANSFERRED",
        DNC: "DNC",
        LEAD_COMPLETED: "LEAD_COMPLETED",
    }.get(plan.scenario, DISPOSITIONS[plan.outcome])


def events_for(plan: Plan) -> list[str]:
    """Event types a call with this plan emits at its end, in order; always ends with
    exactly one ``call.ended``."""
    extra: list[str] = []
    if plan.outcome == ANSWERED:
        if plan.scenario == TRANSFERRED:
            extra = ["call.transferred"]
        elif plan.scenario == DNC:
            extra = ["disposition.set", "dnc.added"]
        elif plan.scenario == LEAD_COMPLETED:
            extra = ["disposition.set", "lead.completed"]
    return [*extra, "call.ended"]
