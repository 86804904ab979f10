"""``POST /_sandbox/clock/advance`` and fast-forward move time, not history: every call step
and webhook attempt due in the window happens in order, as of its planned sandbox time, so
CDRs keep their planned durations and prices.

The sandboxes here run at a tiny time scale: sandbox time all but stands still, so nothing
happens unless a test moves the clock (no race with the worker)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any

from tests.support.receiver import Receiver
from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.db.engine import read
from unlimcall_sandbox.server.rating import price_cents
from unlimcall_sandbox.server.runtime import load_clock
from unlimcall_sandbox.server.services import clock as clock_service
from unlimcall_sandbox.server.services import dashboard as dashboard_service
from unlimcall_sandbox.testing.pytest_plugin import Sandbox as PluginSandbox

STILL = 0.001  # time scale: a sandbox second takes a thousand real seconds
LEAD = "+15005550008"  # answered, lead completed


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _advance(sb: Sandbox, body: dict[str, Any] | None = None) -> dict[str, Any]:
    path = "/_sandbox/clock/fast-forward" if body is None else "/_sandbox/clock/advance"
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    r = await sb.client.post(path, headers=sb.admin, **kwargs)
    assert r.status_code == 200, r.text
    assert ts(r.headers["x-unlimcall-sandbox-time"]) >= ts(r.json()["sandboxTime"]) - 1
    data: dict[str, Any] = r.json()
    return data


async def test_fast_forward_bills_the_planned_413_seconds(fresh: Any) -> None:
    # Seed 0, second call to the lead number: planned ring 6 s, talk 413 s (the issue's).
    async with fresh(time_scale=STILL, seed=0) as sb:
        customer, token, agent_id = await sb.customer_with_agent()
        first = await sb.place_call(token, agent_id, LEAD)
        await _advance(sb)
        assert (await sb.call(first))["state"] == "ended"
        call_id = await sb.place_call(token, agent_id, LEAD)
        planned = await sb.call(call_id)
        assert (planned["ringSec"], planned["talkSec"]) == (6, 413)
        done = await _advance(sb)
        assert done["calls"] == 1
        call = await sb.call(call_id)
        assert call["state"] == "ended"
        created = ts(call["createdAt"])
        assert ts(call["ringingAt"]) == created + 1
        assert ts(call["answeredAt"]) == created + 1 + 6
        assert ts(call["endedAt"]) == created + 1 + 6 + 413
        assert ts(done["sandboxTime"]) >= ts(call["endedAt"])
        ended = next(e for e in call["events"] if e["event"] == "call.ended")
        assert ended["durationSec"] == 413
        r = await sb.client.get("/v1/cdrs", headers=sb.bearer(token))
        cdrs = r.json()["calls"]
        cdr = next(c for c in cdrs if c["billsec"] == 413)
        assert cdr["duration"] == 6 + 413
        rate = sb.rt.rates.rate_for(LEAD)
        assert cdr["sellPriceCents"] == price_cents(413, rate.cents_per_minute)
        assert len(cdrs) == 2
        # Nothing pending: another fast-forward moves nothing.
        again = await _advance(sb)
        assert (again["calls"], again["deliveries"]) == (0, 0)
        del customer


async def test_advance_runs_exactly_the_steps_due_in_the_window_in_order(fresh: Any) -> None:
    async with fresh(time_scale=STILL, seed=0) as sb:
        _, token, agent_id = await sb.customer_with_agent()
        a = await sb.place_call(token, agent_id, LEAD)  # ring 7 s, talk 203 s
        b = await sb.place_call(token, agent_id, LEAD)  # ring 6 s, talk 413 s
        plan_a, plan_b = await sb.call(a), await sb.call(b)
        assert (plan_a["ringSec"], plan_a["talkSec"], plan_b["ringSec"]) == (7, 203, 6)
        start = ts(plan_a["createdAt"])
        clock = (await sb.client.get("/_sandbox/clock", headers=sb.admin)).json()
        # Half a second in: nothing is due yet.
        moved = await _advance(sb, {"seconds": 0.5})
        assert (moved["steps"], moved["calls"]) == (0, 0)
        assert moved["advancedSec"] >= 0.5
        assert ts(moved["sandboxTime"]) >= ts(clock["sandboxTime"])
        # To 3 s after the start: both calls ring (set-up is 1 s), nothing else.
        moved = await _advance(sb, {"to": _iso(start + 3)})
        assert (moved["steps"], moved["calls"]) == (2, 2)
        a_now, b_now = await sb.call(a), await sb.call(b)
        assert (a_now["state"], b_now["state"]) == ("ringing", "ringing")
        assert ts(a_now["ringingAt"]) == start + 1
        # 10 s on: both answered (at 1 + 7 and 1 + 6 s), none ended.
        moved = await _advance(sb, {"seconds": 10})
        assert (moved["steps"], moved["calls"]) == (2, 2)
        a_now, b_now = await sb.call(a), await sb.call(b)
        assert (a_now["state"], b_now["state"]) == ("answered", "answered")
        assert ts(a_now["answeredAt"]) == start + 8
        # Far enough for both to end: each ends at its planned time, A before B.
        moved = await _advance(sb, {"seconds": 600})
        assert (moved["steps"], moved["calls"]) == (2, 2)
        a_now, b_now = await sb.call(a), await sb.call(b)
        assert ts(a_now["endedAt"]) == start + 1 + 7 + 203
        assert ts(b_now["endedAt"]) == ts(b_now["createdAt"]) + 1 + 6 + 413
        events = [e for c in (a_now, b_now) for e in c["events"]]
        stamps = [ts(e["createdAt"]) for e in events]
        assert stamps == sorted(stamps)
        cdrs = (await sb.client.get("/v1/cdrs", headers=sb.bearer(token))).json()["calls"]
        assert sorted(c["billsec"] for c in cdrs) == [203, 413]


def _iso(value: float) -> str:
    return datetime.fromtimestamp(value).astimezone().isoformat()


async def test_advance_runs_the_webhook_retries_due_in_the_window(
    fresh: Any, receiver: Receiver
) -> None:
    async with fresh(time_scale=STILL) as sb:
        customer = await sb.account()
        token = await sb.token(customer)
        r = await sb.client.post(
            "/v1/hooks",
            json={"event": "call.ended", "target_url": f"{receiver.url}/ended"},
            headers=sb.bearer(token),
        )
        assert r.status_code == 200, r.text
        receiver.status = 500
        await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})
        await receiver.wait_for("/ended", 1)
        [pending] = await sb.wait_deliveries(
            lambda items: len(items) == 1 and items[0]["attempts"], status="pending"
        )
        # The first retry is 24-36 s away (30 s ± 20 %): 10 s is not enough, 60 s is.
        moved = await _advance(sb, {"seconds": 10})
        assert moved["deliveries"] == 0
        receiver.status = 200
        moved = await _advance(sb, {"seconds": 60})
        assert moved["deliveries"] == 1
        got = await receiver.wait_for("/ended", 2, timeout=10)
        assert got[1].headers["x-unlimcall-delivery"] == pending["id"]
        await sb.wait_deliveries(lambda items: len(items) == 1, status="delivered", timeout=10)


async def test_advance_replays_a_failing_receivers_retry_schedule_in_order(
    fresh: Any, receiver: Receiver
) -> None:
    """Every retry due in the window is sent, each as of its planned time and planned from
    the one before: 30 s × 2ⁿ ± 20 % puts attempts 2-5 inside 600 s and the sixth past it."""
    async with fresh(time_scale=STILL) as sb:
        customer = await sb.account()
        token = await sb.token(customer)
        r = await sb.client.post(
            "/v1/hooks",
            json={"event": "call.ended", "target_url": f"{receiver.url}/ended"},
            headers=sb.bearer(token),
        )
        assert r.status_code == 200, r.text
        receiver.status = 500
        await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})
        await receiver.wait_for("/ended", 1)
        [first] = await sb.wait_deliveries(
            lambda items: len(items) == 1 and items[0]["attempts"], status="pending"
        )
        clock = (await sb.client.get("/_sandbox/clock", headers=sb.admin)).json()
        ticked = sb.rt.clock.real_now()  # the live stream's last tick, as the advance lands
        moved = await _advance(sb, {"seconds": 600})
        target = ts(moved["sandboxTime"])
        assert 599 <= target - ts(clock["sandboxTime"]) <= 601, (clock, moved)
        # Settled: the next attempt planned lies beyond the window.
        [delivery] = await sb.wait_deliveries(
            lambda items: (
                len(items) == 1
                and items[0]["nextAttemptAt"] is not None
                and ts(items[0]["nextAttemptAt"]) > target
            ),
            status="pending",
            timeout=20,
        )
        attempts = delivery["attempts"]
        story = (clock, first, moved, [(a["attemptedAt"], a["nextAttemptAt"]) for a in attempts])
        assert [a["number"] for a in attempts] == [1, 2, 3, 4, 5], story
        assert all(a["statusCode"] == 500 and a["outcome"] == "retry" for a in attempts)
        for before, after in itertools.pairwise(attempts):
            # Stamped when it was planned: exactly where the attempt before planned it.
            assert after["attemptedAt"] == before["nextAttemptAt"], story
            gap = ts(after["attemptedAt"]) - ts(before["attemptedAt"])
            base = 30 * 2 ** (before["number"] - 1)
            assert 0.8 * base - 1 <= gap <= 1.2 * base + 1, story
        # The first went out before the advance; the fifth inside the window.
        assert ts(attempts[0]["attemptedAt"]) <= target - 600 + 1, story
        assert ts(attempts[-1]["attemptedAt"]) <= target, story
        await receiver.wait_for("/ended", 5, timeout=20)
        assert len(receiver.received) == 5  # the sixth waits for its time
        # The dashboard's live stream, which ticked as the advance landed, still shows them:
        # it looks for attempts stored since its tick (wall time), not stamped since.
        since = target - 0.5
        assert ts(attempts[-1]["attemptedAt"]) < since
        async with read(sb.rt.engine) as conn:
            changed = await dashboard_service.changes(conn, int(customer), since, ticked)
        [shown] = [x for x in changed["deliveries"] if x["id"] == delivery["id"]]
        assert [a["number"] for a in shown["attempts"]] == [1, 2, 3, 4, 5]


async def test_advance_refuses_a_bad_request(sandbox: Sandbox) -> None:
    for body in ({}, {"seconds": 1, "to": "2100-01-01T00:00:00Z"}, {"seconds": -1}):
        r = await sandbox.client.post("/_sandbox/clock/advance", json=body, headers=sandbox.admin)
        assert r.status_code == 400, body
    r = await sandbox.client.post(
        "/_sandbox/clock/advance", json={"to": "2000-01-01T00:00:00Z"}, headers=sandbox.admin
    )
    assert r.status_code == 400
    assert "only moves on" in r.json()["message"]


# -- sandbox time in plain sight ------------------------------------------------------------


async def test_every_response_carries_the_sandbox_time(fresh: Any) -> None:
    async with fresh(time_scale=STILL) as sb:
        _, token, _ = await sb.customer_with_agent()
        clock = (await sb.client.get("/_sandbox/clock", headers=sb.admin)).json()
        now = ts(clock["sandboxTime"])
        answers = [
            await sb.client.get("/v1/me", headers=sb.bearer(token)),
            await sb.client.head("/v1/me", headers=sb.bearer(token)),
            await sb.client.get("/v1/me"),  # 401
            await sb.client.head("/v1/cdrs"),  # 401, HEAD
            await sb.client.post("/v1/calls", content=b"{", headers=sb.bearer(token)),  # 400
            await sb.client.get("/healthz"),
            await sb.client.get("/no/such/route"),  # 404 from outside the router
            await sb.client.get("/_sandbox/clock"),  # 401 from the control plane
        ]
        for r in answers:
            stamp = r.headers.get("x-unlimcall-sandbox-time")
            assert stamp is not None, (r.request.method, r.request.url, r.status_code)
            assert stamp.endswith("Z") and abs(ts(stamp) - now) <= 1, stamp
        # An advance shows in the very next response.
        await _advance(sb, {"seconds": 86400})
        r = await sb.client.get("/healthz")
        assert abs(ts(r.headers["x-unlimcall-sandbox-time"]) - (now + 86400)) <= 1


async def test_another_process_picks_up_an_advance(fresh: Any) -> None:
    async with fresh(time_scale=STILL) as sb:
        other = await load_clock(sb.rt.engine, STILL)  # as another process holds it
        before = other.now()
        await _advance(sb, {"seconds": 3600})
        await clock_service.sync(sb.rt.db, other, 0.0)
        assert abs(other.now() - (before + 3600)) < 1
        assert abs(other.now() - sb.rt.clock.now()) < 1


async def test_the_plugin_reads_sandbox_time(fresh: Any) -> None:
    async with fresh(time_scale=STILL) as sb:
        plugin = PluginSandbox(sb.base_url, sb.settings.admin_token or "")
        try:
            # The plugin is synchronous: off the loop that serves the sandbox.
            first = await asyncio.to_thread(plugin.now)
            moved = await asyncio.to_thread(plugin.advance, 7200)
            second = await asyncio.to_thread(plugin.now)
        finally:
            plugin.close()
        assert first.tzinfo is not None
        assert moved["advancedSec"] == 7200
        assert 7199 <= (second - first).total_seconds() <= 7201


async def test_fast_forward_racing_the_worker_still_bills_as_planned(fresh: Any) -> None:
    # Time scale 3600: the worker steps these calls too, while the advance does.
    async with fresh() as sandbox:
        _, token, agent_id = await sandbox.customer_with_agent()
        ids = [await sandbox.place_call(token, agent_id, LEAD) for _ in range(5)]
        await _advance(sandbox)
        cdrs = (await sandbox.client.get("/v1/cdrs", headers=sandbox.bearer(token))).json()["calls"]
        assert len(cdrs) == 5
        planned = sorted(
            [
                (c["ringSec"] + c["talkSec"], c["talkSec"])
                for c in [await sandbox.call(i) for i in ids]
            ]
        )
        assert sorted((c["duration"], c["billsec"]) for c in cdrs) == planned
        for call_id in ids:
            call = await sandbox.call(call_id)
            assert call["state"] == "ended"
            assert [e["event"] for e in call["events"]].count("call.ended") == 1


async def test_advances_racing_the_worker_on_one_account(fresh: Any) -> None:
    # Rounds of ten calls on one account, each followed at once by an advance, while the
    # worker steps the same calls (time scale 60). On PostgreSQL an advance that stepped call
    # after call, holding the account row from one call's end while the worker held the next
    # call and waited for the account, deadlocked (a 500 here); a clock re-read in flight
    # across the advance's commit put this process's clock back (the header behind the body).
    async with fresh(time_scale=60) as sandbox:
        _, token, agent_id = await sandbox.customer_with_agent()
        ids: list[str] = []
        for round_ in range(10):
            ids += await asyncio.gather(
                *[sandbox.place_call(token, agent_id, LEAD) for _ in range(10)]
            )
            await _advance(sandbox, {"seconds": 5 + round_})
        await _advance(sandbox)
        for call_id in ids:
            call = await sandbox.call(call_id)
            assert call["state"] == "ended"
            assert [e["event"] for e in call["events"]].count("call.ended") == 1
        r = await sandbox.client.get(
            "/v1/cdrs", headers=sandbox.bearer(token), params={"limit": 500}
        )
        planned = sorted(
            (c["ringSec"] + c["talkSec"], c["talkSec"])
            for c in [await sandbox.call(i) for i in ids]
        )
        assert sorted((c["duration"], c["billsec"]) for c in r.json()["calls"]) == planned
