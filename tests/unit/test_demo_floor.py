"""Demo traffic's pure parts: where the floor dials, and what an agent is doing."""

from __future__ import annotations

import pytest

from unlimcall_sandbox.server.rating import region_of
from unlimcall_sandbox.server.services import demo as demo_service


def test_demo_destinations_mix_the_forcing_numbers_with_many_countries() -> None:
    numbers = [demo_service.destination(7, "run", n) for n in range(400)]
    assert numbers == [demo_service.destination(7, "run", n) for n in range(400)]  # seeded
    forced = {n for n in numbers if n.startswith("+1500555000")}
    assert forced == {f"+1500555000{d}" for d in range(2, 9)}  # never the rejected 0001
    regions = {region_of(n) for n in numbers if n not in forced}
    assert len(regions) >= 15
    assert 0.2 < len([n for n in numbers if n in forced]) / len(numbers) < 0.5


@pytest.mark.parametrize(
    ("state", "answered", "shown"),
    [
        ("queued", False, "ringing"),
        ("ringing", False, "ringing"),
        ("answered", True, "talking"),
        ("busy", False, "wrap-up"),
    ],
)
def test_agent_activity_follows_its_latest_call(state: str, answered: bool, shown: str) -> None:
    class Row:
        id = "c1"
        created_at = 100.0
        answered_at = 110.0 if answered else None
        ended_at = None
        updated_at = 111.0

    row = Row()
    row.state = state  # type: ignore[attr-defined]
    assert demo_service.activity(row, 112.0)["activity"] == shown


def test_an_agent_wraps_up_after_a_call_then_is_idle() -> None:
    class Row:
        id = "c1"
        state = "ended"
        created_at = 100.0
        answered_at = 110.0
        ended_at = 200.0
        updated_at = 200.0

    wrap = demo_service.wrap_seconds("c1", True)
    assert 8 <= wrap <= 30
    assert demo_service.activity(Row(), 200.0 + wrap - 1)["activity"] == "wrap-up"
    idle = demo_service.activity(Row(), 200.0 + wrap)
    assert idle == {"activity": "idle", "since": 200.0 + wrap, "until": None}
    assert demo_service.activity(None, 0.0)["activity"] == "idle"
