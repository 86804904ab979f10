"""Fair delivery (issue 15, item 3): one account's receivers that never answer cannot
delay another account's first attempt. Account A has many more hooks than its in-flight
cap (and, with B, more than the worker's slots) pointing at a receiver that accepts and
never replies; B's event is delivered while A's attempts still hang, and A never has
more than its cap out at once. Also: the per-account cap on active hooks."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.receiver import HangingReceiver, Receiver
from tests.support.sandbox import Sandbox
from unlimcall_sandbox.workers.delivery import IN_FLIGHT

pytestmark = pytest.mark.slow

A_HOOKS = IN_FLIGHT + 50  # more than the worker's slots, all on one account
PER_ACCOUNT = 10  # A's in-flight cap, well below its hook count


async def _hook(sb: Sandbox, token: str, url: str) -> Any:
    return await sb.client.post(
        "/v1/hooks",
        headers=sb.bearer(token),
        json={"event": "call.ended", "target_url": url},
    )


async def test_dead_receivers_of_one_account_do_not_delay_another(fresh: Any) -> None:
    hanging = await HangingReceiver().start()
    live = await Receiver().start()
    try:
        async with fresh(
            webhook_timeout=60.0,  # A's attempts hang for the whole test
            webhook_inflight_per_account=PER_ACCOUNT,
            hooks_per_account=A_HOOKS,
        ) as sb:
            a = await sb.account()
            a_token = await sb.token(a)
            made = await sb.concurrently(
                [_hook(sb, a_token, f"{hanging.url}/a{i}") for i in range(A_HOOKS)]
            )
            assert {r.status_code for r in made} == {200}
            b = await sb.account()
            b_token = await sb.token(b)
            r = await _hook(sb, b_token, f"{live.url}/b")
            assert r.status_code == 200, r.text
            b_hook = r.json()["id"]

            await sb.admin_post("/events", {"customerId": a, "event": "call.ended"})
            # A's attempts are out and hanging, as many as its cap lets it have.
            assert await hanging.wait_connections(PER_ACCOUNT) == PER_ACCOUNT

            fired = time.perf_counter()
            await sb.admin_post("/events", {"customerId": b, "event": "call.ended"})
            await live.wait_for("/b", 1, timeout=30)
            first_attempt_s = time.perf_counter() - fired
            [b_delivery] = await sb.wait_deliveries(
                lambda items: len(items) == 1 and items[0]["status"] == "delivered",
                hookId=b_hook,
            )
            assert len(b_delivery["attempts"]) == 1

            # ... while A's are still in flight: none has an outcome yet, and no more
            # than the cap went out; the rest wait, neither dropped nor timed out.
            a_items = await sb.deliveries(customerId=a)
            assert len(a_items) == A_HOOKS
            assert {d["status"] for d in a_items} == {"pending"}
            assert not any(d["attempts"] for d in a_items), a_items[:3]
            assert hanging.connections == PER_ACCOUNT
            assert hanging.accepted == PER_ACCOUNT
            print(
                f"\nB's event-to-first-attempt with {A_HOOKS} hanging hooks on A:"
                f" {first_attempt_s * 1000:.0f} ms"
            )
    finally:
        await hanging.stop()
        await live.stop()


async def test_an_account_has_at_most_its_cap_of_active_hooks(fresh: Any) -> None:
    async with fresh(hooks_per_account=3) as sb:
        customer = await sb.account()
        token = await sb.token(customer)
        made = [await _hook(sb, token, f"https://hooks.example/{i}") for i in range(3)]
        assert [r.status_code for r in made] == [200, 200, 200]
        r = await _hook(sb, token, "https://hooks.example/4")
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_input"
        assert "3 active hooks" in r.json()["message"]
        # Deleting one makes room again.
        gone = await sb.client.delete(f"/v1/hooks/{made[0].json()['id']}", headers=sb.bearer(token))
        assert gone.status_code in (200, 204), gone.text
        assert (await _hook(sb, token, "https://hooks.example/5")).status_code == 200


async def test_attempts_over_the_cap_wait_and_then_go_out(fresh: Any) -> None:
    """Deferred, not dropped: every waiting attempt goes out once the account's earlier
    ones time out, each timed from when it went out."""
    hanging = await HangingReceiver().start()
    try:
        async with fresh(webhook_timeout=0.5, webhook_inflight_per_account=4) as sb:
            a = await sb.account()
            a_token = await sb.token(a)
            for i in range(12):
                assert (await _hook(sb, a_token, f"{hanging.url}/a{i}")).status_code == 200
            await sb.admin_post("/events", {"customerId": a, "event": "call.ended"})
            items = await sb.wait_deliveries(
                lambda items: len(items) == 12 and all(d["attempts"] for d in items),
                timeout=60,
                customerId=a,
            )
            for d in items:
                first = d["attempts"][0]
                assert "timeout" in (first.get("error") or ""), first
            assert hanging.accepted >= 12
    finally:
        await hanging.stop()
