"""Webhooks: subscriptions per the contract, and signed deliveries that a real receiver
over HTTP gets, retried and recorded as DESIGN.md says."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from datetime import datetime
from typing import Any

import pytest

from tests.support.contract import check_webhook_body
from tests.support.receiver import Received, Receiver, free_port
from tests.support.sandbox import Sandbox
from unlimcall_sandbox.workers.delivery import BATCH_MAX

EVENTS = ["call.ended", "call.transferred", "disposition.set", "dnc.added", "lead.completed"]


def independently_verify(secret: str, received: Received) -> bool:
    """The scheme, written again from DESIGN.md, not imported from the sandbox."""
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", received.headers["x-unlimcall-signature"])
    assert match, received.headers["x-unlimcall-signature"]
    message = match.group(1).encode() + b"." + received.body
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match.group(2))


async def subscribe(sb: Sandbox, token: str, event: str, url: str) -> dict[str, str]:
    r = await sb.client.post(
        "/v1/hooks", json={"event": event, "target_url": url}, headers=sb.bearer(token)
    )
    assert r.status_code == 200, r.text
    data: dict[str, str] = r.json()
    return data


async def fire(sb: Sandbox, customer: str, event: str = "call.ended", **fields: Any) -> str:
    data = await sb.admin_post(
        "/events", {"customerId": customer, "event": event, "fields": fields}
    )
    return str(data["eventId"])


@pytest.mark.parametrize(
    "body",
    [
        {"event": "call.started", "target_url": "https://example.com/h"},
        {"event": "", "target_url": "https://example.com/h"},
        {"event": 5, "target_url": "https://example.com/h"},
        {"target_url": "https://example.com/h"},
        {"event": "call.ended"},
        {"event": "call.ended", "target_url": "http://example.com/h"},
        {"event": "call.ended", "target_url": "ftp://example.com/h"},
        {"event": "call.ended", "target_url": "https://"},
        {"event": "call.ended", "target_url": "not a url"},
        {"event": "call.ended", "target_url": "https://example.com/" + "a" * 500},
        {"event": "call.ended", "target_url": ["https://example.com"]},
        {"event": "call.ended", "target_url": "https://exa mple.com/"},
        {"event": "call.ended", "target_url": "https://example.com:99999/"},
        [],
        "call.ended",
    ],
)
async def test_bad_subscriptions_are_400(sandbox: Sandbox, body: Any) -> None:
    token = await sandbox.token(await sandbox.account(), ["write:hooks"])
    r = await sandbox.client.post("/v1/hooks", json=body, headers=sandbox.bearer(token))
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input"), body


async def test_subscription_answers_once_with_the_secret(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    token = await sandbox.token(customer)
    url = "https://example.com/" + "p" * (512 - len("https://example.com/"))
    hook = await subscribe(sandbox, token, "call.ended", url)
    assert uuid.UUID(hook["id"])
    assert hook["secret"].startswith("whsec_")
    assert len(hook["secret"]) >= 30
    local = await subscribe(sandbox, token, "lead.completed", "http://localhost:9/hook")
    assert local["id"] != hook["id"]
    h = sandbox.bearer(token)
    for path in ("/v1/me", "/v1/balance", "/v1/agents", "/v1/cdrs"):
        assert hook["secret"] not in (await sandbox.client.get(path, headers=h)).text


async def test_strict_mode_refuses_plain_http(fresh: Any) -> None:
    async with fresh(insecure_webhook_hosts=()) as sb:
        token = await sb.token(await sb.account(), ["write:hooks"])
        r = await sb.client.post(
            "/v1/hooks",
            headers=sb.bearer(token),
            json={"event": "call.ended", "target_url": "http://127.0.0.1:8000/h"},
        )
        assert (r.status_code, r.json()["error"]) == (400, "invalid_input")


async def test_unsubscribe_rules(sandbox: Sandbox) -> None:
    a, b = await sandbox.account(), await sandbox.account()
    ta, tb = await sandbox.token(a), await sandbox.token(b)
    hook = await subscribe(sandbox, ta, "call.ended", "https://example.com/a")

    async def delete(token: str, hook_id: str) -> Any:
        return await sandbox.client.delete(f"/v1/hooks/{hook_id}", headers=sandbox.bearer(token))

    for bad in ("nope", "123", "7d7b1a523c6f4c579a0b0d8a3f2b9e11", "{" + hook["id"] + "}"):
        r = await delete(ta, bad)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_input"), bad
    r = await delete(ta, str(uuid.uuid4()))
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = await delete(tb, hook["id"])
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = await delete(ta, hook["id"].upper())
    assert r.status_code == 204
    assert r.content == b""
    r = await delete(ta, hook["id"])
    assert (r.status_code, r.json()["error"]) == (404, "not_found")


async def test_delivery_is_signed_and_shaped(sandbox: Sandbox, receiver: Receiver) -> None:
    customer = await sandbox.account()
    token = await sandbox.token(customer)
    hook = await subscribe(sandbox, token, "call.ended", f"{receiver.url}/signed")
    event_id = await fire(sandbox, customer, durationSec=61, sentimentLabel="negative")
    [got] = await receiver.wait_for("/signed", 1)
    assert independently_verify(hook["secret"], got)
    assert not independently_verify(hook["secret"] + "x", got)
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-unlimcall-event"] == "call.ended"
    body = got.json()
    check_webhook_body("call.ended", body)
    assert (body["event"], body["eventId"], body["durationSec"], body["sentimentLabel"]) == (
        "call.ended",
        event_id,
        61,
        "negative",
    )
    assert datetime.fromisoformat(body["createdAt"].replace("Z", "+00:00"))
    [delivery] = await sandbox.wait_deliveries(
        lambda items: len(items) == 1 and items[0]["status"] == "delivered", hookId=hook["id"]
    )
    assert got.headers["x-unlimcall-delivery"] == delivery["id"]
    [attempt] = delivery["attempts"]
    assert (attempt["number"], attempt["statusCode"], attempt["outcome"]) == (1, 200, "delivered")
    assert attempt["latencyMs"] >= 0
    assert attempt["responseBody"] == ("answer 200 " * 200)[:1024]
    assert attempt["nextAttemptAt"] is None


async def test_an_event_with_many_hooks_reaches_each_exactly_once(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    """More hooks than one deliver_event job sends (BATCH_MAX): the rest go out through
    jobs of their own; every hook gets its own signed delivery, once."""
    customer = await sandbox.account()
    token = await sandbox.token(customer)
    n = BATCH_MAX + 7
    hooks = [
        await subscribe(sandbox, token, "call.ended", f"{receiver.url}/many/{i}") for i in range(n)
    ]
    event_id = await fire(sandbox, customer)
    for i, hook in enumerate(hooks):
        [got] = await receiver.wait_for(f"/many/{i}", 1)
        assert independently_verify(hook["secret"], got)
        assert got.json()["eventId"] == event_id
    items = await sandbox.wait_deliveries(
        lambda items: len(items) == n and all(d["status"] == "delivered" for d in items),
        customerId=customer,
    )
    assert len({d["id"] for d in items}) == n
    assert all(len(d["attempts"]) == 1 for d in items)
    # Final: every attempt made was answered before it was recorded, so all are in.
    assert len([r for r in receiver.received if r.path.startswith("/many/")]) == n


async def test_500_then_200_is_delivered_on_attempt_two(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    customer = await sandbox.account()
    token = await sandbox.token(customer)
    hook = await subscribe(sandbox, token, "call.ended", f"{receiver.url}/flaky")
    receiver.status = 500
    await fire(sandbox, customer)
    await receiver.wait_for("/flaky", 1)
    receiver.status = 200
    got = await receiver.wait_for("/flaky", 2)
    assert got[0].headers["x-unlimcall-delivery"] == got[1].headers["x-unlimcall-delivery"]
    assert got[0].body == got[1].body
    assert all(independently_verify(hook["secret"], g) for g in got)
    [d] = await sandbox.wait_deliveries(
        lambda items: items and items[0]["status"] == "delivered", hookId=hook["id"]
    )
    assert [(a["number"], a["statusCode"], a["outcome"]) for a in d["attempts"]] == [
        (1, 500, "retry"),
        (2, 200, "delivered"),
    ]
    assert d["attempts"][0]["nextAttemptAt"] is not None


async def test_4xx_fails_at_once(sandbox: Sandbox, receiver: Receiver) -> None:
    customer = await sandbox.account()
    token = await sandbox.token(customer)
    hook = await subscribe(sandbox, token, "call.ended", f"{receiver.url}/gone")
    receiver.status = 404
    await fire(sandbox, customer)
    [d] = await sandbox.wait_deliveries(
        lambda items: items and items[0]["status"] == "failed", hookId=hook["id"]
    )
    assert [(a["statusCode"], a["outcome"]) for a in d["attempts"]] == [(404, "permanent")]
    assert d["nextAttemptAt"] is None
    # Failed is final (nothing is claimed again), and its one attempt was answered
    # before it was recorded: the receiver has seen all there will be.
    assert len(receiver.for_path("/gone")) == 1


async def test_always_500_stops_24h_after_the_first_attempt(fresh: Any, receiver: Receiver) -> None:
    async with fresh(time_scale=40000.0) as sb:
        customer = await sb.account()
        token = await sb.token(customer)
        hook = await subscribe(sb, token, "call.ended", f"{receiver.url}/down")
        receiver.status = 503
        await fire(sb, customer)
        [d] = await sb.wait_deliveries(
            lambda items: items and items[0]["status"] == "failed", hookId=hook["id"], timeout=60
        )
        attempts = d["attempts"]

        def t(value: str) -> float:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

        first = t(attempts[0]["attemptedAt"])
        planned = [t(a["nextAttemptAt"]) for a in attempts[:-1]]
        # The schedule ends exactly at the window: the last retry is planned at first + 24 h
        # and nothing after it. (At this time scale a real millisecond is 40 sandbox
        # seconds, so when attempts actually ran is checked against the plan loosely.)
        assert abs(max(planned) - (first + 24 * 3600)) <= 1
        assert planned == sorted(planned)
        ran = [t(a["attemptedAt"]) for a in attempts]
        assert all(r >= p - 1 for r, p in zip(ran[1:], planned, strict=True))
        delays = [p - r for r, p in zip(ran, planned, strict=False)]  # backoff after each
        assert delays[0] < 60 < delays[3]  # exponential: 30 s base, doubling, jittered
        assert max(delays) <= 3 * 3600 * 1.2 + 1
        assert all(a["outcome"] == "retry" for a in attempts[:-1])
        assert attempts[-1]["outcome"] == "exhausted"
        assert attempts[-1]["nextAttemptAt"] is None
        assert len(receiver.for_path("/down")) == len(attempts)
        ids = {r.headers["x-unlimcall-delivery"] for r in receiver.for_path("/down")}
        assert ids == {d["id"]}


async def test_timeouts_connection_errors_and_redirects_are_retried(
    fresh: Any, receiver: Receiver
) -> None:
    async with fresh(webhook_timeout=0.3, webhook_retry_base=3600.0) as sb:
        customer = await sb.account()
        token = await sb.token(customer)
        slow = await subscribe(sb, token, "call.ended", f"{receiver.url}/slow")
        dead = await subscribe(sb, token, "call.ended", f"http://127.0.0.1:{free_port()}/dead")
        moved = await subscribe(sb, token, "call.ended", f"{receiver.url}/moved")
        receiver.delay = 1.0
        await fire(sb, customer)

        async def first_attempt(hook_id: str) -> dict[str, Any]:
            [d] = await sb.wait_deliveries(
                lambda items: items and items[0]["attempts"], hookId=hook_id
            )
            return d

        d = await first_attempt(slow["id"])
        assert d["status"] == "pending"
        assert d["attempts"][0]["statusCode"] is None
        assert "timeout" in d["attempts"][0]["error"]
        d = await first_attempt(dead["id"])
        assert d["status"] == "pending"
        assert "Connect" in d["attempts"][0]["error"]
        receiver.delay = 0
        receiver.status = 302
        await fire(sb, customer)

        # Not followed: the receiver sees the original path only; the attempt is retried.
        def redirected(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [x for x in items if any(a["statusCode"] == 302 for a in x["attempts"])]

        moved_items = await sb.wait_deliveries(redirected, hookId=moved["id"], timeout=10)
        assert redirected(moved_items)[0]["status"] == "pending"
        assert all(r.path == "/moved" or r.path == "/slow" for r in receiver.received)


async def test_deleted_hook_gets_nothing_new_but_keeps_history(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    customer = await sandbox.account()
    token = await sandbox.token(customer)
    hook = await subscribe(sandbox, token, "call.ended", f"{receiver.url}/old")
    await fire(sandbox, customer)
    await receiver.wait_for("/old", 1)
    await sandbox.wait_deliveries(
        lambda items: items and items[0]["status"] == "delivered", hookId=hook["id"]
    )
    r = await sandbox.client.delete(f"/v1/hooks/{hook['id']}", headers=sandbox.bearer(token))
    assert r.status_code == 204
    witness = await subscribe(sandbox, token, "call.ended", f"{receiver.url}/witness")
    # An event's deliveries are written with it: one, for the live hook only.
    fired = await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    assert fired["deliveries"] == 1
    [d] = await sandbox.wait_deliveries(
        lambda items: items and items[0]["status"] != "pending", hookId=witness["id"]
    )
    assert (d["eventId"], d["status"]) == (fired["eventId"], "delivered")
    assert len(receiver.for_path("/witness")) == 1
    assert len(receiver.for_path("/old")) == 1
    history = await sandbox.deliveries(hookId=hook["id"])
    assert [d["status"] for d in history] == ["delivered"]


async def test_forcing_call_delivers_its_documented_events(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    customer, token, agent_id = await sandbox.customer_with_agent()
    secrets = {
        e: (await subscribe(sandbox, token, e, f"{receiver.url}/{e}"))["secret"] for e in EVENTS
    }
    call_id = await sandbox.place_call(token, agent_id, "+15005550007")
    await sandbox.wait_call(call_id)
    for event in ("disposition.set", "dnc.added", "call.ended"):
        [got] = await receiver.wait_for(f"/{event}", 1)
        assert independently_verify(secrets[event], got)
        body = got.json()
        check_webhook_body(event, body)
        assert (body["callId"], body["event"], body["phone"]) == (call_id, event, "+15005550007")
    # The call's events and their deliveries were written when it ended: once those are
    # final, nothing more is on its way.
    items = await sandbox.wait_deliveries(
        lambda items: len(items) >= 3 and all(d["status"] != "pending" for d in items),
        customerId=customer,
    )
    assert sorted(d["event"] for d in items) == ["call.ended", "disposition.set", "dnc.added"]
    assert {d["status"] for d in items} == {"delivered"}
    assert not receiver.for_path("/call.transferred")
    assert not receiver.for_path("/lead.completed")


async def test_control_filters_redeliver_and_fast_forward(fresh: Any, receiver: Receiver) -> None:
    async with fresh(time_scale=1.0) as sb:
        customer = await sb.account()
        token = await sb.token(customer)
        ended = await subscribe(sb, token, "call.ended", f"{receiver.url}/ended")
        lead = await subscribe(sb, token, "lead.completed", f"{receiver.url}/lead")
        receiver.status = 500
        await fire(sb, customer, "call.ended")
        await fire(sb, customer, "lead.completed", contactId="ct_custom")
        await receiver.wait_for("/ended", 1)
        await receiver.wait_for("/lead", 1)
        assert receiver.for_path("/lead")[0].json()["contactId"] == "ct_custom"
        pending = await sb.wait_deliveries(
            lambda items: len(items) == 2 and all(i["attempts"] for i in items), status="pending"
        )
        assert {p["hookId"] for p in pending} == {ended["id"], lead["id"]}
        only_lead = await sb.deliveries(event="lead.completed")
        assert [d["hookId"] for d in only_lead] == [lead["id"]]
        assert await sb.deliveries(status="delivered", hookId=ended["id"]) == []
        # At time scale 1 the retry is ~30 s away; fast-forward makes it due now.
        receiver.status = 200
        r = await sb.client.post("/_sandbox/clock/fast-forward", headers=sb.admin)
        assert r.json()["deliveries"] == 2
        await receiver.wait_for("/ended", 2, timeout=5)
        delivered = await sb.wait_deliveries(
            lambda items: len(items) == 2, status="delivered", timeout=5
        )
        # Redeliver one: a new attempt, same delivery id.
        target = next(d for d in delivered if d["hookId"] == ended["id"])
        r = await sb.client.post(f"/_sandbox/deliveries/{target['id']}/redeliver", headers=sb.admin)
        assert r.status_code == 200
        got = await receiver.wait_for("/ended", 3, timeout=5)
        assert got[2].headers["x-unlimcall-delivery"] == target["id"]
        [again] = await sb.wait_deliveries(
            lambda items: (
                items and items[0]["status"] == "delivered" and len(items[0]["attempts"]) >= 3
            ),
            hookId=ended["id"],
        )
        assert again["attempts"][-1]["statusCode"] == 200
        for bad in ("nope", str(uuid.uuid4())):
            r = await sb.client.post(f"/_sandbox/deliveries/{bad}/redeliver", headers=sb.admin)
            assert r.status_code in (400, 404)
        r = await sb.client.get("/_sandbox/deliveries?status=weird", headers=sb.admin)
        assert r.status_code == 400
        r = await sb.client.post(
            "/_sandbox/events",
            headers=sb.admin,
            json={"customerId": customer, "event": "call.started"},
        )
        assert r.status_code == 400
