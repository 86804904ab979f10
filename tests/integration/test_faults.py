"""Fault injection rules: API errors, latency and dropped connections seen by a real HTTP
client; webhook chaos seen by a real receiver."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.support.contract import response_hook
from tests.support.receiver import Receiver
from tests.support.sandbox import Sandbox
from unlimcall_sandbox import verify_signature


async def rule(sb: Sandbox, **body: Any) -> dict[str, Any]:
    data: dict[str, Any] = await sb.admin_post("/faults", body)
    return data


async def fired(sb: Sandbox, rule_id: str) -> int:
    listed = (await sb.client.get("/_sandbox/faults", headers=sb.admin)).json()["faults"]
    [found] = [f for f in listed if f["id"] == rule_id]
    return int(found["fired"])


async def wait_fired(sb: Sandbox, rule_id: str, times: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (n := await fired(sb, rule_id)) < times:
        assert time.monotonic() < deadline, f"rule {rule_id} fired {n} of {times} times"
        await asyncio.sleep(0.02)


@pytest.fixture
async def clean(sandbox: Sandbox) -> Any:
    yield sandbox
    r = await sandbox.client.delete("/_sandbox/faults", headers=sandbox.admin)
    assert r.status_code == 200


async def test_error_rule_with_a_count(clean: Sandbox) -> None:
    sb = clean
    customer = await sb.account()
    h = sb.bearer(await sb.token(customer))
    made = await rule(
        sb, operation="getBalance", action="error", status=500, count=2, customerId=customer
    )
    assert (made["status"], made["error"], made["remaining"]) == (500, "balance_unavailable", 2)
    codes = [(await sb.client.get("/v1/balance", headers=h)).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    listed = (await sb.client.get("/_sandbox/faults", headers=sb.admin)).json()["faults"]
    assert [(f["remaining"], f["fired"]) for f in listed if f["id"] == made["id"]] == [(0, 2)]


async def test_rules_match_by_account(clean: Sandbox) -> None:
    sb = clean
    a, b = await sb.account(), await sb.account()
    ha, hb = sb.bearer(await sb.token(a)), sb.bearer(await sb.token(b))
    await rule(sb, operation="getMe", action="error", error="account_suspended", customerId=a)
    r = await sb.client.get("/v1/me", headers=ha)
    assert (r.status_code, r.json()["error"]) == (403, "account_suspended")
    assert (await sb.client.get("/v1/me", headers=hb)).status_code == 200


async def test_latency_fixed_and_distributed(clean: Sandbox) -> None:
    """A latency rule holds every matching request back by at least its minimum, and
    answers it normally. (How the draws between min and max spread: tests/unit.)"""
    sb = clean
    h = sb.bearer(await sb.token(await sb.account()))
    fixed = await rule(sb, operation="listAgents", action="latency", latencyMs=300)
    t = time.monotonic()
    assert (await sb.client.get("/v1/agents", headers=h)).status_code == 200
    assert time.monotonic() - t >= 0.3
    assert await fired(sb, fixed["id"]) == 1
    await sb.client.delete(f"/_sandbox/faults/{fixed['id']}", headers=sb.admin)
    spread = await rule(
        sb, operation="listAgents", action="latency", latencyMs=50, latencyMaxMs=150
    )
    assert (spread["minMs"], spread["maxMs"]) == (50, 150)
    for _ in range(5):
        t = time.monotonic()
        assert (await sb.client.get("/v1/agents", headers=h)).status_code == 200
        assert time.monotonic() - t >= 0.05
    assert (await sb.client.get("/v1/me", headers=h)).status_code == 200  # not its operation
    assert await fired(sb, spread["id"]) == 5


async def test_drop_is_seen_by_a_real_client(clean: Sandbox) -> None:
    sb = clean
    h = sb.bearer(await sb.token(await sb.account()))
    await rule(sb, operation="listAgents", action="drop", count=1)
    async with httpx.AsyncClient(
        base_url=sb.base_url, event_hooks={"response": [response_hook]}
    ) as raw:
        with pytest.raises(httpx.RemoteProtocolError):
            await raw.get("/v1/agents", headers=h)
        assert (await raw.get("/v1/agents", headers=h)).status_code == 200


async def test_probability_zero_never_fires(clean: Sandbox) -> None:
    sb = clean
    h = sb.bearer(await sb.token(await sb.account()))
    await rule(sb, operation="getMe", action="error", status=401, probability=0.0)
    assert all([(await sb.client.get("/v1/me", headers=h)).status_code == 200 for _ in range(5)])


@pytest.mark.parametrize(
    "body",
    [
        {"action": "explode"},
        {"action": "error", "status": 500},
        {"operation": "getMe", "action": "error", "status": 502},
        {"operation": "noSuchOp", "action": "drop"},
        {"operation": "getMe", "action": "latency"},
        {"operation": "getMe", "action": "latency", "latencyMs": 500, "latencyMaxMs": 100},
        {"action": "drop", "probability": 1.5},
        {"action": "drop", "count": 0},
        {"action": "drop", "unexpected": True},
        {"target": "webhook", "action": "drop"},
        {"target": "webhook", "action": "late"},
        {"target": "webhook", "action": "late", "delayMs": 999_999},
        {"target": "webhook", "action": "duplicate", "operation": "call.started"},
        {"target": "email", "action": "drop"},
    ],
)
async def test_bad_rules_are_400(clean: Sandbox, body: dict[str, Any]) -> None:
    r = await clean.client.post("/_sandbox/faults", json=body, headers=clean.admin)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input"), body


@pytest.mark.parametrize(
    ("operation", "status", "error"),
    [
        ("getBalance", 403, None),
        ("getBalance", None, "account_suspended"),
        ("listAgents", 500, None),
        ("createHook", 413, None),
        ("createHook", 400, "payload_too_large"),
        ("deleteHook", 409, None),
        ("originateCall", 403, "account_suspended"),
        ("getMe", 418, None),
    ],
)
async def test_a_rule_can_inject_only_what_the_operation_lists(
    clean: Sandbox, operation: str, status: int | None, error: str | None
) -> None:
    """A rule that would make /v1 answer outside the contract is refused, saying what the
    operation lists."""
    body: dict[str, Any] = {"operation": operation, "action": "error"}
    body.update({k: v for k, v in (("status", status), ("error", error)) if v is not None})
    before = (await clean.client.get("/_sandbox/faults", headers=clean.admin)).json()
    r = await clean.client.post("/_sandbox/faults", json=body, headers=clean.admin)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input"), body
    message = r.json()["message"]
    assert message.startswith("A fault rule can only inject an error the contract lists: ")
    assert f"{operation} lists no " in message and "it can be forced to: code=" in message
    assert "code=401 error=unauthorized" in message
    after = (await clean.client.get("/_sandbox/faults", headers=clean.admin)).json()
    assert after == before


async def _hooked(sb: Sandbox, receiver: Receiver, path: str) -> tuple[str, str]:
    customer = await sb.account()
    token = await sb.token(customer)
    r = await sb.client.post(
        "/v1/hooks",
        headers=sb.bearer(token),
        json={"event": "call.ended", "target_url": f"{receiver.url}{path}"},
    )
    return customer, r.json()["secret"]


async def test_webhook_duplicate_and_signatures(clean: Sandbox, receiver: Receiver) -> None:
    sb = clean
    customer, secret = await _hooked(sb, receiver, "/dup")
    await rule(sb, target="webhook", action="duplicate", customerId=customer, count=1)
    await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    got = await receiver.wait_for("/dup", 2)
    assert got[0].headers["x-unlimcall-delivery"] == got[1].headers["x-unlimcall-delivery"]
    assert got[0].body == got[1].body
    for action, path in (("bad_signature", "/bad"), ("expired_signature", "/old")):
        customer, secret = await _hooked(sb, receiver, path)
        await rule(sb, target="webhook", action=action, customerId=customer)
        await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})
        [g] = await receiver.wait_for(path, 1)
        header = g.headers["x-unlimcall-signature"]
        assert not verify_signature(secret, header, g.body)
        assert verify_signature(secret, header, g.body, tolerance=0) is (action != "bad_signature")


async def test_webhook_late_and_out_of_order(clean: Sandbox, receiver: Receiver) -> None:
    sb = clean
    customer, _ = await _hooked(sb, receiver, "/late")
    await rule(sb, target="webhook", action="late", delayMs=700, customerId=customer, count=1)
    t = time.time()
    await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    [g] = await receiver.wait_for("/late", 1)
    assert g.at - t >= 0.7
    customer, _ = await _hooked(sb, receiver, "/order")
    held = await rule(
        sb, target="webhook", action="out_of_order", delayMs=1500, customerId=customer, count=1
    )
    first = await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    await wait_fired(sb, held["id"], 1)  # the first is held back; the second is not
    second = await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    got = await receiver.wait_for("/order", 2)
    assert [g.json()["eventId"] for g in got] == [second["eventId"], first["eventId"]]
