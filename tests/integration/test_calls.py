"""POST /v1/calls: validation exactly per the contract, and calls that really play out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.support.contract import check_webhook_body
from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.settings import ALL_SCOPES
from unlimcall_sandbox.workers.jobs import simulate_call


@pytest.fixture
async def dialer(sandbox: Sandbox) -> tuple[str, str, str]:
    return await sandbox.customer_with_agent(balance=50)


async def _post(sb: Sandbox, token: str, body: Any, **headers: str) -> Any:
    if isinstance(body, bytes | str):
        return await sb.client.post(
            "/v1/calls", content=body, headers={**sb.bearer(token), **headers}
        )
    return await sb.client.post("/v1/calls", json=body, headers={**sb.bearer(token), **headers})


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"call me"',
        b"42",
        b"null",
        b"",
        {},
        {"aiAgentId": "27"},
        {"toNumber": "+14155551234"},
        {"aiAgentId": 27, "toNumber": "+14155551234"},
        {"aiAgentId": "27", "toNumber": 14155551234},
        {"aiAgentId": "", "toNumber": "+14155551234"},
        {"aiAgentId": "27", "toNumber": "14155551234"},
        {"aiAgentId": "27", "toNumber": "+1"},
        {"aiAgentId": "27", "toNumber": "+1415555123456789"},
        {"aiAgentId": "27", "toNumber": "+1 415 555 1234"},
        {"aiAgentId": "27", "toNumber": "+14155551234\\u0000"},
        {"aiAgentId": "27", "toNumber": "+14155551234", "fromNumber": "nope"},
        {"aiAgentId": "27", "toNumber": "+14155551234", "fromNumber": 1},
        {"aiAgentId": "27", "toNumber": "+14155551234", "metadata": ["a"]},
        {"aiAgentId": "27", "toNumber": "+14155551234", "metadata": "x"},
    ],
)
async def test_invalid_bodies_are_400_invalid_input(
    sandbox: Sandbox, dialer: tuple[str, str, str], body: Any
) -> None:
    _, token, agent_id = dialer
    if isinstance(body, dict) and body.get("aiAgentId") == "27":
        body = {**body, "aiAgentId": agent_id}
    r = await _post(
        sandbox,
        token,
        body,
        **({"Content-Type": "application/json"} if isinstance(body, bytes) else {}),
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input"), r.text


async def test_non_json_content_type_is_400(sandbox: Sandbox, dialer: tuple[str, str, str]) -> None:
    _, token, agent_id = dialer
    r = await _post(
        sandbox,
        token,
        f"aiAgentId={agent_id}&toNumber=%2B14155551234",
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input")


async def test_unknown_and_foreign_agents_are_404(
    sandbox: Sandbox, dialer: tuple[str, str, str]
) -> None:
    _, token, _ = dialer
    _, _, foreign_agent = await sandbox.customer_with_agent()
    for agent_id in ("999999", "abc", "27", foreign_agent, "1" * 40):
        r = await _post(sandbox, token, {"aiAgentId": agent_id, "toNumber": "+14155551234"})
        assert (r.status_code, r.json()["error"]) == (404, "ai_agent_not_found"), agent_id


async def test_account_and_agent_states_gate_origination(sandbox: Sandbox) -> None:
    customer, token, agent_id = await sandbox.customer_with_agent()
    body = {"aiAgentId": agent_id, "toNumber": "+14155551234"}
    pending = await sandbox.agent(customer, provisioned=False)

    async def expect(status: int, code: str, payload: Any = body) -> None:
        r = await _post(sandbox, token, payload)
        assert (r.status_code, r.json()["error"]) == (status, code)

    await expect(409, "ai_agent_not_provisioned", {**body, "aiAgentId": pending["id"]})
    await sandbox.patch_account(customer, engineConfigured=False)
    await expect(503, "engine_not_configured")
    await sandbox.patch_account(customer, engineConfigured=True, provisioned=False)
    await expect(409, "account_not_provisioned")
    await sandbox.patch_account(customer, provisioned=True, dialerEnabled=False)
    await expect(409, "dialer_required")
    await sandbox.patch_account(customer, dialerEnabled=True, balance=0)
    await expect(502, "originate_failed")
    await sandbox.patch_account(customer, balance=10)
    await expect(502, "originate_failed", {**body, "toNumber": "+15005550001"})
    r = await _post(sandbox, token, body)
    assert r.status_code == 200
    assert r.json()["status"] == "queued"


FORCED: dict[str, tuple[str, list[str], str]] = {
    "+15005550002": ("BUSY", ["call.ended"], "busy"),
    "+15005550003": ("NO ANSWER", ["call.ended"], "no_answer"),
    "+15005550004": ("FAILED", ["call.ended"], "failed"),
    "+15005550005": ("ANSWERED", ["call.ended"], "voicemail"),
    "+15005550006": ("ANSWERED", ["call.transferred", "call.ended"], "transferred"),
    "+15005550007": ("ANSWERED", ["disposition.set", "dnc.added", "call.ended"], "contact_hangup"),
    "+15005550008": (
        "ANSWERED",
        ["disposition.set", "lead.completed", "call.ended"],
        "agent_hangup",
    ),
}


@pytest.mark.parametrize("number", sorted(FORCED))
async def test_forcing_numbers_play_out_as_documented(sandbox: Sandbox, number: str) -> None:
    disposition, events, hangup = FORCED[number]
    customer, token, agent_id = await sandbox.customer_with_agent(balance=50)
    agent = (await sandbox.client.get("/v1/agents", headers=sandbox.bearer(token))).json()
    start_balance = (await sandbox.client.get("/v1/balance", headers=sandbox.bearer(token))).json()
    call_id = await sandbox.place_call(token, agent_id, number)
    call = await sandbox.wait_call(call_id)
    assert [e["event"] for e in call["events"]] == events
    for e in call["events"]:
        check_webhook_body(e["event"], e)
        assert e["callId"] == call_id
        assert e["phone"] == number
    ended = call["events"][-1]
    assert ended["hangupReason"] == hangup
    assert ended["transferInitiated"] is (number == "+15005550006")
    cdrs = (await sandbox.client.get("/v1/cdrs", headers=sandbox.bearer(token))).json()
    assert cdrs["count"] == 1
    cdr = cdrs["calls"][0]
    assert cdr["disposition"] == disposition
    assert (cdr["dst"], cdr["src"], cdr["sipUsername"], cdr["country"], cdr["currency"]) == (
        number,
        "+14155550100",
        agent["agents"][0]["sipUsername"],
        "United States",
        "USD",
    )
    assert cdr["id"].split(".")[0] == str(int(cdr["id"].split(".")[0]))
    assert ended["durationSec"] == cdr["billsec"]
    if disposition == "ANSWERED":
        assert cdr["billsec"] > 0
        assert cdr["sellPriceCents"] > 0
    else:
        assert (cdr["billsec"], cdr["sellPriceCents"]) == (0, 0)
    assert cdr["billsec"] <= cdr["duration"]
    balance = (await sandbox.client.get("/v1/balance", headers=sandbox.bearer(token))).json()
    assert round(start_balance["balance"] - balance["balance"], 4) == cdr["sellPriceCents"] / 100
    if "disposition.set" in events:
        codes = {e["event"]: e["dispositionCode"] for e in call["events"]}
        assert codes["disposition.set"] == ("DNC" if number.endswith("7") else "LEAD_COMPLETED")
    assert customer


async def test_call_states_and_timestamps_add_up(sandbox: Sandbox) -> None:
    _, token, agent_id = await sandbox.customer_with_agent()
    call_id = await sandbox.place_call(
        token, agent_id, "+442071838750", fromNumber="+14155550199", metadata={"lead": "42"}
    )
    call = await sandbox.wait_call(call_id)
    assert call["state"] == "ended"
    assert call["createdAt"] <= call["ringingAt"] <= call["endedAt"]
    cdr = (await sandbox.client.get("/v1/cdrs", headers=sandbox.bearer(token))).json()["calls"][0]
    assert cdr["src"] == "+14155550199"
    assert cdr["country"] == "United Kingdom"
    assert cdr["startTime"] == call["ringingAt"]


async def test_unknown_call_is_404(sandbox: Sandbox) -> None:
    r = await sandbox.client.get(
        "/_sandbox/calls/00000000-0000-0000-0000-000000000000", headers=sandbox.admin
    )
    assert (r.status_code, r.json()["error"]) == (404, "not_found")


async def test_same_seed_same_calls(fresh: Any) -> None:
    outcomes = []
    for _ in range(2):
        async with fresh(seed=1234) as sb:
            _, token, agent_id = await sb.customer_with_agent()
            ids = [
                await sb.place_call(token, agent_id, n)
                for n in ("+14155550123", "+442071838751", "+4930901820")
            ]
            run = []
            for call_id in ids:
                call = await sb.wait_call(call_id)
                run.append(
                    (
                        call_id,
                        call["outcome"],
                        call["ringSec"],
                        call["talkSec"],
                        call["sentiment"],
                        [e["event"] for e in call["events"]],
                    )
                )
            cdrs = (await sb.client.get("/v1/cdrs", headers=sb.bearer(token))).json()["calls"]
            run.append(
                sorted(
                    (
                        c["dst"],
                        c["duration"],
                        c["billsec"],
                        c["sellPriceCents"],
                        c["disposition"],
                        c["id"].split(".")[1],
                    )
                    for c in cdrs
                )
            )
            outcomes.append(run)
    assert outcomes[0] == outcomes[1]


async def test_200_concurrent_calls_one_cdr_each_and_exact_balance(sandbox: Sandbox) -> None:
    customer, token, agent_id = await sandbox.customer_with_agent(balance=1000)
    h = sandbox.bearer(token)
    before = (await sandbox.client.get("/v1/balance", headers=h)).json()["balance"]
    since = iso(sandbox.rt.clock.now() - 60)
    t0 = time.monotonic()
    numbers = [f"+1415555{i:04d}" for i in range(200)]
    results = await sandbox.concurrently(
        [_post(sandbox, token, {"aiAgentId": agent_id, "toNumber": n}) for n in numbers]
    )
    assert [r.status_code for r in results] == [200] * 200
    call_ids = {r.json()["callId"] for r in results}
    assert len(call_ids) == 200
    t1 = time.monotonic()
    for call_id in call_ids:
        call = await sandbox.wait_call(call_id, timeout=60)
        assert [e["event"] for e in call["events"]].count("call.ended") == 1
    print(f"200 calls: placed in {t1 - t0:.2f}s, all ended after {time.monotonic() - t0:.2f}s")
    # At time scale 3600 the default 24 h window is 24 real seconds: ask from the start.
    cdrs = (
        await sandbox.client.get("/v1/cdrs", params={"limit": "1000", "from": since}, headers=h)
    ).json()
    assert cdrs["count"] == 200
    assert len({c["id"] for c in cdrs["calls"]}) == 200
    assert sorted(c["dst"] for c in cdrs["calls"]) == sorted(numbers)
    spent = sum(c["sellPriceCents"] for c in cdrs["calls"])
    after = (await sandbox.client.get("/v1/balance", headers=h)).json()["balance"]
    assert round((before - after) * 100) == spent
    assert customer


async def test_a_job_that_runs_again_changes_nothing(sandbox: Sandbox) -> None:
    _, token, agent_id = await sandbox.customer_with_agent()
    h = sandbox.bearer(token)
    call_id = await sandbox.place_call(token, agent_id, "+15005550008")
    # Race the worker with two more runs of the same job while the call is live.
    ctx = {"rt": sandbox.rt}
    await asyncio.gather(simulate_call(ctx, call_id), simulate_call(ctx, call_id))
    call = await sandbox.wait_call(call_id)
    balance = (await sandbox.client.get("/v1/balance", headers=h)).json()
    assert await simulate_call(ctx, call_id) == "ended"
    assert await simulate_call(ctx, "no-such-call") == "missing"
    again = await sandbox.call(call_id)
    assert again["events"] == call["events"]
    assert [e["event"] for e in call["events"]].count("call.ended") == 1
    assert (await sandbox.client.get("/v1/balance", headers=h)).json() == balance
    assert (await sandbox.client.get("/v1/cdrs", headers=h)).json()["count"] == 1


async def test_fast_forward_ends_a_real_time_call_as_planned(fresh: Any) -> None:
    async with fresh(time_scale=1.0) as sb:
        _, token, agent_id = await sb.customer_with_agent()
        call_id = await sb.place_call(token, agent_id, "+15005550008")
        assert (await sb.call(call_id))["state"] in ("queued", "ringing")
        r = await sb.client.post("/_sandbox/clock/fast-forward", headers=sb.admin)
        assert r.status_code == 200 and r.json()["calls"] == 1
        call = await sb.call(call_id)
        assert call["state"] == "ended"
        # Time moved, not history: the CDR bills the planned talk time.
        cdr = (await sb.client.get("/v1/cdrs", headers=sb.bearer(token))).json()["calls"][0]
        assert (cdr["billsec"], cdr["duration"]) == (
            call["talkSec"],
            call["ringSec"] + call["talkSec"],
        )
        assert [e["event"] for e in call["events"]][-1] == "call.ended"


async def test_write_calls_scope_only(sandbox: Sandbox) -> None:
    customer, _, agent_id = await sandbox.customer_with_agent()
    others = [s for s in ALL_SCOPES if s != "write:calls"]
    token = await sandbox.token(customer, others)
    r = await _post(sandbox, token, {"aiAgentId": agent_id, "toNumber": "+14155551234"})
    assert r.status_code == 401
