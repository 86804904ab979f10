"""Demo traffic (``/_sandbox/demo``): a call floor on an account of its own (or a chosen
one), at a high time scale here. It stops by itself, touches no other account, and every
event of its calls arrives, signed and verified, in its built-in inbox. Also the read models
the dashboard draws the floor and a call's story from."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from sqlalchemy import func, select, update

from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server import lifecycle
from unlimcall_sandbox.server.db.engine import read, write
from unlimcall_sandbox.server.db.tables import accounts, agents, calls, demo_runs, hooks
from unlimcall_sandbox.server.job_queue import QUEUE
from unlimcall_sandbox.server.services import demo as demo_service

FAST = 600.0  # ten sandbox minutes in a real second


async def _status(sb: Sandbox) -> dict[str, Any]:
    r = await sb.client.get("/_sandbox/demo", headers=sb.admin)
    assert r.status_code == 200, r.text
    demo: dict[str, Any] = r.json()["demo"]
    return demo


async def _wait_demo(sb: Sandbox, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        demo = await _status(sb)
        if predicate(demo):
            return demo
        assert time.monotonic() < deadline, f"demo never got there: {demo}"
        await asyncio.sleep(0.05)


async def _snapshot(sb: Sandbox, account_ids: list[int]) -> Any:
    """What a demo must not change on other accounts."""
    async with read(sb.rt.engine) as conn:
        rows = []
        for table, column in ((calls, calls.c.account_id), (hooks, hooks.c.account_id)):
            rows.append(
                (
                    await conn.execute(
                        select(column, func.count())
                        .select_from(table)
                        .where(column.in_(account_ids))
                        .group_by(column)
                    )
                ).all()
            )
        rows.append(
            (
                await conn.execute(
                    select(agents.c.account_id, func.count())
                    .where(agents.c.account_id.in_(account_ids))
                    .group_by(agents.c.account_id)
                )
            ).all()
        )
        rows.append(
            (
                await conn.execute(
                    select(accounts.c.id, accounts.c.balance_e4, accounts.c.status).where(
                        accounts.c.id.in_(account_ids)
                    )
                )
            ).all()
        )
    return [sorted(tuple(r) for r in group) for group in rows]


async def _calls_of(sb: Sandbox, account_id: int) -> list[Any]:
    async with read(sb.rt.engine) as conn:
        return list(
            (await conn.execute(select(calls).where(calls.c.account_id == account_id))).all()
        )


async def _inbox(sb: Sandbox, name: str) -> dict[str, Any]:
    r = await sb.client.get(f"/_sandbox/inbox/{name}?limit=1000", headers=sb.admin)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_a_demo_floor_runs_on_its_own_account_and_stops_by_itself(fresh: Any) -> None:
    async with fresh(time_scale=FAST) as sb:
        bystander = await sb.account()
        others = [1042, int(bystander)]
        before = await _snapshot(sb, others)
        r = await sb.client.post(
            "/_sandbox/demo", json={"agents": 6, "minutes": 30}, headers=sb.admin
        )
        assert r.status_code == 201, r.text
        started = r.json()
        assert started["status"] == "running" and started["createdAccount"] is True
        customer = started["customerId"]
        assert int(customer) not in others
        assert started["inbox"] == f"demo-{customer}"
        # One demo at a time.
        again = await sb.client.post("/_sandbox/demo", json={}, headers=sb.admin)
        assert again.status_code == 409
        assert again.json()["error"] == "conflict"

        done = await _wait_demo(sb, lambda d: d["status"] == "finished")
        assert done["id"] == started["id"] and done["stoppedAt"] is None
        assert done["callsInFlight"] == 0 and done["lastError"] is None
        placed = await _calls_of(sb, int(customer))
        assert len(placed) == done["callsPlaced"] >= 6  # every agent dialed
        assert all(c.state == lifecycle.ENDED for c in placed)
        # Nothing was dialed after the run finished (a tick that decided before the end may
        # stamp its calls a little later, at high time scales), and every agent took part.
        assert done["t"]["finished"] >= started["t"]["ends"]
        assert all(c.created_at <= done["t"]["finished"] for c in placed)
        async with read(sb.rt.engine) as conn:
            demo_agents = set(
                (
                    await conn.execute(
                        select(agents.c.id).where(agents.c.account_id == int(customer))
                    )
                ).scalars()
            )
        assert len(demo_agents) == 6
        assert {c.agent_id for c in placed} == demo_agents
        # No agent ever had two calls at once.
        by_agent: dict[int, list[Any]] = {}
        for c in sorted(placed, key=lambda c: c.created_at):
            by_agent.setdefault(c.agent_id, []).append(c)
        for agent_calls in by_agent.values():
            for earlier, later in itertools.pairwise(agent_calls):
                assert earlier.ended_at <= later.created_at
        # Other accounts: untouched.
        assert await _snapshot(sb, others) == before

        # Every event of its calls arrives in its inbox, signed and verified.
        deliveries = await sb.wait_deliveries(
            lambda items: items and all(d["status"] == "delivered" for d in items),
            customerId=customer,
        )
        assert {d["targetUrl"] for d in deliveries} == {
            f"{sb.base_url}/_sandbox/inbox/demo-{customer}"
        }
        ended_events = [d for d in deliveries if d["event"] == "call.ended"]
        assert len(ended_events) == len(placed)
        inbox = await _inbox(sb, f"demo-{customer}")
        assert inbox["count"] == len(deliveries)
        assert all(m["signatureVerified"] for m in inbox["messages"])
        assert {m["deliveryId"] for m in inbox["messages"]} == {d["id"] for d in deliveries}


async def test_a_demo_stops_on_request_and_the_next_reuses_its_account(fresh: Any) -> None:
    async with fresh(time_scale=FAST) as sb:
        r = await sb.client.post(
            "/_sandbox/demo", json={"agents": 3, "minutes": 600}, headers=sb.admin
        )
        assert r.status_code == 201, r.text
        first = r.json()
        await _wait_demo(sb, lambda d: d["callsPlaced"] >= 3)
        r = await sb.client.post("/_sandbox/demo/stop", headers=sb.admin)
        assert r.status_code == 200, r.text
        stopped = r.json()
        assert stopped["stoppedAt"] is not None
        assert stopped["status"] in ("winding_down", "finished")
        done = await _wait_demo(sb, lambda d: d["status"] == "finished")
        assert stopped["t"]["ends"] < first["t"]["ends"]
        finished = done["t"]["finished"]
        assert all(c.created_at <= finished for c in await _calls_of(sb, int(first["customerId"])))
        assert (await sb.client.post("/_sandbox/demo/stop", headers=sb.admin)).status_code == 404

        r = await sb.client.post(
            "/_sandbox/demo", json={"agents": 4, "minutes": 600}, headers=sb.admin
        )
        assert r.status_code == 201, r.text
        second = r.json()
        assert second["customerId"] == first["customerId"]  # its own account, reused
        assert second["agents"] == 4
        await _wait_demo(sb, lambda d: d["id"] == second["id"] and d["callsPlaced"] >= 4)
        assert (await sb.client.post("/_sandbox/demo/stop", headers=sb.admin)).status_code == 200
        await _wait_demo(sb, lambda d: d["id"] == second["id"] and d["status"] == "finished")
        assert done["callsPlaced"] >= 3


async def test_a_demo_on_a_chosen_account_stays_there_and_leaves_no_hooks(fresh: Any) -> None:
    async with fresh(time_scale=FAST) as sb:
        chosen = await sb.account(companyName="Chosen Co")
        before = await _snapshot(sb, [1042])
        r = await sb.client.post(
            "/_sandbox/demo",
            json={"agents": 2, "minutes": 30, "customerId": chosen},
            headers=sb.admin,
        )
        assert r.status_code == 201, r.text
        assert r.json()["createdAccount"] is False
        await _wait_demo(sb, lambda d: d["status"] == "finished")
        placed = await _calls_of(sb, int(chosen))
        assert len(placed) >= 2
        async with read(sb.rt.engine) as conn:
            active = (
                await conn.execute(
                    select(func.count()).where(
                        hooks.c.account_id == int(chosen), hooks.c.active.is_(True)
                    )
                )
            ).scalar_one()
        assert active == 0  # the demo's hooks are gone with it
        assert await _snapshot(sb, [1042]) == before
        r = await sb.client.post(
            "/_sandbox/demo", json={"agents": 0, "customerId": chosen}, headers=sb.admin
        )
        assert r.status_code == 400
        r = await sb.client.post("/_sandbox/demo", json={"customerId": "999999"}, headers=sb.admin)
        assert r.status_code == 404
        r = await sb.client.post("/_sandbox/demo", json={"bogus": 1}, headers=sb.admin)
        assert r.status_code == 400


async def test_a_demo_whose_tick_job_was_lost_is_kicked_by_a_read(fresh: Any) -> None:
    """No worker here: the first tick is never run. Once it is overdue, reading the demo's
    status enqueues a recovery tick for the same tick number."""
    async with fresh(worker=False) as sb:
        r = await sb.client.post("/_sandbox/demo", json={"agents": 1}, headers=sb.admin)
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        async with write(sb.rt.engine) as conn:
            await conn.execute(
                update(demo_runs)
                .where(demo_runs.c.id == run_id)
                .values(next_tick_real=time.time() - demo_service.KICK_AFTER - 1)
            )
        await _status(sb)
        queued = [j.decode() for j in await sb.rt.redis.zrange(QUEUE, 0, -1)]
        assert f"demo:{run_id}:0" in queued  # the first tick, never run
        assert any(j.startswith(f"demo:{run_id}:0:kick") for j in queued)


async def test_the_dashboard_shows_an_outcome_only_once_reached(fresh: Any) -> None:
    """Without a worker a call stays queued: its plan is fixed (the control plane's
    describe shows it), the dashboard's views do not give it away."""
    async with fresh(worker=False) as sb:
        customer, _, agent = await sb.customer_with_agent()
        r = await sb.client.post(
            f"/_sandbox/accounts/{customer}/calls",
            json={"aiAgentId": agent, "toNumber": "+15005550008"},
            headers=sb.admin,
        )
        call_id = r.json()["callId"]
        assert (await sb.call(call_id))["scenario"] == "lead_completed"
        views = [
            (await sb.client.get(f"/_sandbox/dashboard/calls/{call_id}", headers=sb.admin)).json()[
                "call"
            ],
            (
                await sb.client.get(
                    f"/_sandbox/dashboard/accounts/{customer}/calls", headers=sb.admin
                )
            ).json()["items"][0],
            (
                await sb.client.get(
                    f"/_sandbox/dashboard/accounts/{customer}/floor", headers=sb.admin
                )
            ).json()["inFlight"][0],
        ]
        for view in views:
            assert (view["state"], view["outcome"], view["scenario"]) == ("queued", None, None)
        floor = (
            await sb.client.get(f"/_sandbox/dashboard/accounts/{customer}/floor", headers=sb.admin)
        ).json()
        [tile] = floor["agents"]
        assert tile["activity"] == "ringing" and tile["call"]["outcome"] is None


async def test_a_calls_story_in_order_with_cdr_events_and_verified_attempts(
    sandbox: Sandbox,
) -> None:
    customer, token, agent = await sandbox.customer_with_agent()
    for event in ("call.transferred", "call.ended"):
        r = await sandbox.client.post(
            "/v1/hooks",
            headers=sandbox.bearer(token),
            json={
                "event": event,
                "target_url": f"{sandbox.base_url}/_sandbox/inbox/story-{customer}",
            },
        )
        assert r.status_code == 200
    call_id = await sandbox.place_call(token, agent, "+15005550006")
    await sandbox.wait_call(call_id)
    await sandbox.wait_deliveries(
        lambda items: len(items) == 2 and all(d["status"] == "delivered" for d in items),
        customerId=customer,
    )
    r = await sandbox.client.get(f"/_sandbox/dashboard/calls/{call_id}", headers=sandbox.admin)
    assert r.status_code == 200, r.text
    story = r.json()
    assert (story["call"]["outcome"], story["call"]["scenario"]) == ("answered", "transferred")
    steps = [
        t.get("state") or t.get("event") or t["kind"]
        for t in story["timeline"]
        if t["kind"] != "attempt"
    ]
    assert steps == [
        "queued",
        "ringing",
        "answered",
        "call.transferred",
        "ended",
        "cdr",
        "call.ended",
    ]
    times = [t["at"] for t in story["timeline"]]
    assert times == sorted(times)
    assert story["cdr"]["disposition"] == "ANSWERED" and story["cdr"]["callId"] == call_id
    assert [e["event"] for e in story["events"]] == ["call.transferred", "call.ended"]
    assert len(story["deliveries"]) == 2
    for d in story["deliveries"]:
        [attempt] = d["attempts"]
        assert (attempt["statusCode"], attempt["signature"]) == (200, "verified")
        assert json.loads(attempt["responseBody"])["signature"] == "verified"
        [message] = d["inboxMessages"]
        r = await sandbox.client.get(
            f"/_sandbox/dashboard/inbox-messages/{message['id']}", headers=sandbox.admin
        )
        detail = r.json()
        assert detail["signature"] == "verified" and detail["callId"] == call_id
        assert detail["headers"]["x-unlimcall-delivery"] == d["id"]
        assert json.loads(detail["rawBody"]) == detail["json"]
    r = await sandbox.client.get(f"/_sandbox/dashboard/calls/{'0' * 8}", headers=sandbox.admin)
    assert r.status_code == 404
