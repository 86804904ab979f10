"""Acme's tests, against an isolated UnlimCall Sandbox started by the pytest plugin."""

from __future__ import annotations

import time

import httpx
import pytest
from acme_dialer import Dialer, UnlimCallError, accept_webhook


def test_a_completed_lead_reaches_our_webhook_signed(
    unlimcall, unlimcall_account, unlimcall_inbox
) -> None:
    dialer = Dialer(unlimcall.api_url, unlimcall_account.token, unlimcall_account.agent_id)
    secret = dialer.subscribe("lead.completed", unlimcall_inbox.url)
    before = dialer.balance()
    call_id = dialer.dial("+15005550008")  # the sandbox's "lead completed" number
    call = unlimcall.wait_for_call(call_id)
    assert [e["event"] for e in call["events"]][-1] == "call.ended"
    [message] = unlimcall_inbox.wait_for(1, event="lead.completed")
    assert message["signatureVerified"]  # the sandbox checked it; now our own code does
    event = accept_webhook(secret, message["headers"], message["rawBody"].encode())
    assert (event["event"], event["callId"]) == ("lead.completed", call_id)
    assert dialer.balance() < before
    assert any(c["dst"] == "+15005550008" for c in dialer.recent_cdrs())


def test_we_verify_signatures_like_production(unlimcall, unlimcall_account) -> None:
    dialer = Dialer(unlimcall.api_url, unlimcall_account.token, unlimcall_account.agent_id)
    seen: list[dict] = []

    def app(request: httpx.Request) -> httpx.Response:  # our receiver, in-process
        seen.append(accept_webhook(secret, dict(request.headers), request.content))
        return httpx.Response(204)

    inbox = unlimcall.inbox()
    secret = dialer.subscribe("call.ended", inbox.url)
    unlimcall.fire(unlimcall_account, "call.ended", durationSec=12)
    [message] = inbox.wait_for(1)
    raw = httpx.Request(
        "POST",
        "http://acme.local/hooks",
        headers=message["headers"],
        content=message["rawBody"].encode(),
    )
    assert app(raw).status_code == 204
    assert seen[0]["durationSec"] == 12
    with pytest.raises(ValueError, match="bad signature"):
        accept_webhook("whsec_wrong", message["headers"], raw.content)


def test_our_client_surfaces_upstream_failures(unlimcall, unlimcall_account) -> None:
    dialer = Dialer(unlimcall.api_url, unlimcall_account.token, unlimcall_account.agent_id)
    with pytest.raises(UnlimCallError) as busy:
        dialer.dial("+15005550001")  # rejected upstream
    assert (busy.value.status, busy.value.code) == (502, "originate_failed")
    unlimcall.fault(
        operation="getBalance",
        action="error",
        status=500,
        count=1,
        customerId=unlimcall_account.customer_id,
    )
    with pytest.raises(UnlimCallError) as failing:
        dialer.balance()
    assert failing.value.status == 500
    assert dialer.balance() == 100.0  # the rule had a count of one


def test_retries_reach_us_after_an_outage(unlimcall, unlimcall_account) -> None:
    dialer = Dialer(unlimcall.api_url, unlimcall_account.token, unlimcall_account.agent_id)
    inbox = unlimcall.inbox()
    inbox.answer_with(503)
    dialer.subscribe("call.ended", inbox.url)
    unlimcall.fire(unlimcall_account, "call.ended")
    inbox.wait_for(1)
    inbox.answer_with(200)
    unlimcall.fast_forward()
    for _ in range(200):  # retries keep coming until one is answered 200
        answered = [m["answered"] for m in inbox.messages()]
        if 200 in answered:
            break
        time.sleep(0.05)
        unlimcall.fast_forward()
    assert answered[0] == 503
    assert answered[-1] == 200
