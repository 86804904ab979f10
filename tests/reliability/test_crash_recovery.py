"""Kill the worker with SIGKILL mid-work, flush Redis, start a new one: nothing is lost.

The API runs in the test (no in-process worker); workers are real ``unlimcall-sandbox
worker`` processes on the same database and Redis.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.support.processes import api_only, flush_redis, worker_process
from tests.support.receiver import Receiver
from unlimcall_sandbox.server.clock import iso

pytestmark = pytest.mark.slow


async def test_calls_survive_a_killed_worker_and_a_flushed_redis(
    backend: str, tmp_path: Path
) -> None:
    async with api_only(backend, tmp_path, time_scale=60.0) as sb:
        since = iso(sb.rt.clock.now() - 60)
        _, token, agent_id = await sb.customer_with_agent(balance=500)
        calls = [await sb.place_call(token, agent_id, f"+1415555{i:04d}") for i in range(20)]
        calls.append(await sb.place_call(token, agent_id, "+15005550008"))
        log = tmp_path / "worker.log"
        with worker_process(sb, log) as first:
            for _ in range(200):  # until some call is mid-way
                states = {(await sb.call(c))["state"] for c in calls}
                if "answered" in states:
                    break
                await asyncio.sleep(0.05)
            assert "answered" in states, log.read_text()
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        await flush_redis(sb)
        unfinished = [c for c in calls if (await sb.call(c))["state"] != "ended"]
        assert unfinished, "the kill came too late to test anything"
        with worker_process(sb, log):
            for call_id in calls:
                call = await sb.wait_call(call_id, timeout=60)
                assert [e["event"] for e in call["events"]].count("call.ended") == 1
        cdrs = (
            await sb.client.get(
                "/v1/cdrs", params={"from": since, "limit": "1000"}, headers=sb.bearer(token)
            )
        ).json()
        assert cdrs["count"] == len(calls)
        assert len({c["id"] for c in cdrs["calls"]}) == len(calls)


async def test_deliveries_survive_a_killed_worker_and_a_flushed_redis(
    backend: str, tmp_path: Path
) -> None:
    receiver = await Receiver(delay=1.0).start()
    try:
        async with api_only(backend, tmp_path, webhook_timeout=5.0) as sb:
            customer = await sb.account()
            token = await sb.token(customer)
            r = await sb.client.post(
                "/v1/hooks",
                headers=sb.bearer(token),
                json={"event": "call.ended", "target_url": f"{receiver.url}/in"},
            )
            hook_id = r.json()["id"]
            for _ in range(10):
                await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})
            log = tmp_path / "worker.log"
            with worker_process(sb, log) as first:
                await receiver.wait_for("/in", 1, timeout=30)  # a delivery is in flight
                first.send_signal(signal.SIGKILL)
                first.wait(10)
            await flush_redis(sb)
            receiver.delay = 0
            expected = {d["id"] for d in await sb.deliveries(hookId=hook_id)}
            assert len(expected) == 10
            with worker_process(sb, log):
                await sb.wait_deliveries(
                    lambda items: (
                        len(items) == 10 and all(i["status"] == "delivered" for i in items)
                    ),
                    hookId=hook_id,
                    timeout=90,
                )
            seen = {g.headers["x-unlimcall-delivery"] for g in receiver.for_path("/in")}
            assert seen == expected
    finally:
        await receiver.stop()
