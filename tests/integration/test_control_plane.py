"""The /_sandbox control plane: guarded, strict about input, and it changes what /v1 sees."""

from __future__ import annotations

import json
from typing import Any

import phonenumbers
import pytest
from sqlalchemy import func, select

from tests.support.sandbox import Sandbox
from unlimcall_sandbox.resources import FIXTURES
from unlimcall_sandbox.server.db.engine import read
from unlimcall_sandbox.server.db.tables import cdrs
from unlimcall_sandbox.server.services import events as event_service


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/_sandbox/accounts"),
        ("PATCH", "/_sandbox/accounts/1042"),
        ("POST", "/_sandbox/accounts/1042/tokens"),
        ("DELETE", "/_sandbox/tokens/tok_x"),
        ("POST", "/_sandbox/reset"),
        ("GET", "/_sandbox/deliveries"),
        ("POST", "/_sandbox/clock/fast-forward"),
    ],
)
async def test_control_plane_needs_the_admin_token(
    sandbox: Sandbox, method: str, path: str
) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        sandbox.bearer(await sandbox.token("1042")),
    ):
        r = await sandbox.client.request(method, path, headers=headers, json={})
        assert (r.status_code, r.json()["error"]) == (401, "unauthorized")


async def test_new_account_is_ready_for_everything(sandbox: Sandbox) -> None:
    data = await sandbox.admin_post(
        "/accounts",
        {
            "companyName": "Ready Inc",
            "primaryContactEmail": "ops@ready.example",
            "accountType": "postpaid",
            "balance": 12.5,
            "currency": "EUR",
            "creditLimit": 100,
        },
    )
    assert data["status"] == "active"
    assert data["provisioned"] and data["dialerEnabled"] and data["engineConfigured"]
    assert (data["balance"], data["currency"], data["creditLimit"]) == (12.5, "EUR", 100.0)
    r = await sandbox.client.get(f"/_sandbox/accounts/{data['customerId']}", headers=sandbox.admin)
    assert r.json() == data


@pytest.mark.parametrize(
    "body",
    [
        {"companyName": "X"},
        {"companyName": "X", "primaryContactEmail": "x@x.example", "bogus": 1},
        {"companyName": "X", "primaryContactEmail": "x@x.example", "balance": "lots"},
        {"companyName": "X", "primaryContactEmail": "x@x.example", "accountType": "barter"},
        {"companyName": "", "primaryContactEmail": "x@x.example"},
        {"companyName": "X", "primaryContactEmail": "x@x.example", "balance": 1e300},
        [],
        "nope",
    ],
)
async def test_bad_account_bodies_are_400(sandbox: Sandbox, body: Any) -> None:
    r = await sandbox.client.post("/_sandbox/accounts", json=body, headers=sandbox.admin)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input")


async def test_patch_changes_what_v1_answers(sandbox: Sandbox) -> None:
    customer = await sandbox.account(balance=5)
    token = await sandbox.token(customer)
    h = sandbox.bearer(token)
    data = await sandbox.patch_account(customer, balance=7.25, creditLimit=3, provisioned=False)
    assert (data["balance"], data["creditLimit"], data["provisioned"]) == (7.25, 3.0, False)
    assert (await sandbox.client.get("/v1/balance", headers=h)).json()["balance"] == 7.25
    assert (await sandbox.client.get("/v1/cdrs", headers=h)).status_code == 409
    r = await sandbox.client.patch(
        f"/_sandbox/accounts/{customer}", json={"status": "closed"}, headers=sandbox.admin
    )
    assert r.status_code == 400
    r = await sandbox.client.patch(
        "/_sandbox/accounts/999999", json={"status": "active"}, headers=sandbox.admin
    )
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = await sandbox.client.patch("/_sandbox/accounts/abc", json={}, headers=sandbox.admin)
    assert r.status_code == 404


async def test_tokens_scopes_are_checked(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    r = await sandbox.client.post(
        f"/_sandbox/accounts/{customer}/tokens",
        json={"scopes": ["read:everything"]},
        headers=sandbox.admin,
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input")
    r = await sandbox.client.post(
        f"/_sandbox/accounts/{customer}/tokens",
        json={"scopes": ["read:cdrs"], "expiresIn": -5},
        headers=sandbox.admin,
    )
    assert r.status_code == 400
    data = await sandbox.admin_post(f"/accounts/{customer}/tokens", {"scopes": ["read:cdrs"]})
    assert data["token"].startswith("unl_live_")
    assert len(data["token"]) >= len("unl_live_") + 32
    assert data["prefix"] == data["token"][:13]


async def test_agents_and_generated_history(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    agent = await sandbox.agent(customer, label="Night seat", callerId="+442071838700")
    assert (agent["label"], agent["callerId"], agent["provisioned"]) == (
        "Night seat",
        "+442071838700",
        True,
    )
    dup = await sandbox.client.post(
        f"/_sandbox/accounts/{customer}/agents",
        json={"label": "x", "sipUsername": agent["sipUsername"]},
        headers=sandbox.admin,
    )
    assert dup.status_code == 400
    gen = await sandbox.admin_post(f"/accounts/{customer}/cdrs/generate", {"count": 25})
    assert gen["count"] == 25
    h = sandbox.bearer(await sandbox.token(customer, ["read:cdrs"]))
    from_ = gen["fromTime"]
    body = (
        await sandbox.client.get("/v1/cdrs", params={"from": from_, "limit": "1000"}, headers=h)
    ).json()
    assert body["count"] == 25
    assert {c["sipUsername"] for c in body["calls"]} == {agent["sipUsername"]}
    for bad in ({"count": 0}, {"count": 3_000_000}, {"count": "many"}, {}):
        r = await sandbox.client.post(
            f"/_sandbox/accounts/{customer}/cdrs/generate", json=bad, headers=sandbox.admin
        )
        assert r.status_code == 400, bad


async def test_reset_returns_to_the_fixtures(fresh: Any) -> None:
    async with fresh() as sb:
        extra = await sb.account()
        r = await sb.client.post("/_sandbox/reset", headers=sb.admin)
        assert r.status_code == 200
        body = r.json()
        assert body["customerId"] == "1042"
        h = sb.bearer(body["demoToken"])
        assert (await sb.client.get("/v1/me", headers=h)).json()["customerId"] == "1042"
        gone = await sb.client.get(f"/_sandbox/accounts/{extra}", headers=sb.admin)
        assert gone.status_code == 404
        agents = (await sb.client.get("/v1/agents", headers=h)).json()
        assert [a["id"] for a in agents["agents"]] == ["27", "28", "29"]


# -- POST /_sandbox/events honours the contract (issue 16 item 6, issue 15 item 9) ---------


async def _fire(sb: Sandbox, customer: str, event: str, fields: Any) -> Any:
    return await sb.client.post(
        "/_sandbox/events",
        json={"customerId": customer, "event": event, "fields": fields},
        headers=sb.admin,
    )


@pytest.mark.parametrize(
    ("event", "fields", "named"),
    [
        ("call.ended", {"durationSec": "abc", "callId": 5}, ["durationSec", "callId"]),
        ("call.ended", {"durationSec": 1.5}, ["durationSec"]),
        ("call.ended", {"durationSec": True}, ["durationSec"]),
        ("call.ended", {"transferInitiated": "yes"}, ["transferInitiated"]),
        ("call.ended", {"sentimentLabel": None}, ["sentimentLabel"]),
        ("call.ended", {"hangupReason": ["busy"]}, ["hangupReason"]),
        ("lead.completed", {"dispositionCode": 3}, ["dispositionCode"]),
        ("dnc.added", {"phone": {"e164": "+1"}}, ["phone"]),
        ("call.transferred", {"actor": False, "contactId": 1}, ["actor", "contactId"]),
        ("disposition.set", {"eventId": "mine"}, ["eventId"]),
        ("call.ended", {"event": "lead.completed", "createdAt": "now"}, ["event", "createdAt"]),
    ],
)
async def test_fired_fields_are_checked_against_the_events_schema(
    sandbox: Sandbox, event: str, fields: dict[str, Any], named: list[str]
) -> None:
    """``fields`` must fit the event's schema in the contract (CallEndedEvent for call.ended,
    WebhookEvent for the others): 400 ``invalid_input`` naming every offending field; the
    keys the sandbox sets itself are refused too. Nothing is written."""
    customer = await sandbox.account()
    r = await _fire(sandbox, customer, event, fields)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input"), r.text
    for name in named:
        assert f"fields.{name}" in r.json()["message"], r.text
    assert await sandbox.deliveries(customerId=customer) == []


@pytest.mark.parametrize(
    ("event", "fields"),
    [
        ("call.ended", {"durationSec": 61, "sentimentLabel": "negative", "campaign": {"id": 7}}),
        ("disposition.set", {"durationSec": "abc"}),  # not WebhookEvent's: any JSON value
        ("lead.completed", {"dispositionCode": "APPOINTMENT_SET", "score": 0.9}),
        ("call.ended", {}),
    ],
)
async def test_fired_fields_that_fit_the_schema_are_delivered_as_given(
    sandbox: Sandbox, event: str, fields: dict[str, Any]
) -> None:
    customer = await sandbox.account()
    r = await _fire(sandbox, customer, event, fields)
    assert r.status_code == 201, r.text
    body = r.json()["body"]
    assert {k: body[k] for k in fields} == fields
    assert (body["event"], body["eventId"]) == (event, r.json()["eventId"])


async def _lifecycle_events(sb: Sandbox, token: str, agent: str, to: str) -> dict[str, Any]:
    call = await sb.wait_call(await sb.place_call(token, agent, to))
    return {e["event"]: e for e in call["events"]}


def _shape(body: dict[str, Any]) -> dict[str, str]:
    return {k: type(v).__name__ for k, v in body.items()}


async def test_fired_defaults_are_what_the_lifecycle_emits(sandbox: Sandbox) -> None:
    """Each fired event's default body has the keys, the JSON types and (where the
    lifecycle's are deterministic) the values a real call emits for it: a fired
    lead.completed says LEAD_COMPLETED as a call to +15005550008 does, not ANSWERED."""
    customer, token, agent = await sandbox.customer_with_agent()
    real: dict[str, dict[str, Any]] = {}
    # A fired disposition.set stands for a lead completion's (+15005550008), not a DNC's.
    for to in ("+15005550008", "+15005550006", "+15005550007"):
        for name, event in (await _lifecycle_events(sandbox, token, agent, to)).items():
            real.setdefault(name, event)
    for _ in range(20):  # a plain number: the first call the seeded plan answers normally
        ended = (await _lifecycle_events(sandbox, token, agent, "+14155550123"))["call.ended"]
        if ended["dispositionCode"] == "ANSWERED":
            real["call.ended"] = ended
            break
    assert set(real) == set(event_service.EVENT_TYPES)
    stable = ("phone", "contactId", "dispositionCode", "actor", "transferInitiated")
    for name, emitted in real.items():
        r = await _fire(sandbox, customer, name, {})
        assert r.status_code == 201, r.text
        fired = r.json()["body"]
        assert _shape(fired) == _shape(emitted), name
        for key in stable:
            assert fired.get(key) == emitted.get(key), (name, key, fired, emitted)
        if name != "call.ended":  # the forced scenarios' endings are fixed, too
            assert fired == {**emitted, **{k: fired[k] for k in ("callId", "eventId", "createdAt")}}
    lead = (await _fire(sandbox, customer, "lead.completed", {})).json()["body"]
    assert lead["dispositionCode"] == "LEAD_COMPLETED"
    assert lead["actor"] == f"ai_agent:{agent}"


async def test_the_answer_counts_every_delivery_created(sandbox: Sandbox, receiver: Any) -> None:
    """Issue 15 item 9: ``deliveries`` is the number of delivery rows the event created
    (one job sends them all): 8 hooks, 8 deliveries; none subscribed, 0."""
    customer = await sandbox.account()
    token = await sandbox.token(customer, ["write:hooks"])
    for i in range(8):
        r = await sandbox.client.post(
            "/v1/hooks",
            json={"event": "lead.completed", "target_url": f"{receiver.url}/count/{i}"},
            headers=sandbox.bearer(token),
        )
        assert r.status_code == 200, r.text
    fired = (await _fire(sandbox, customer, "lead.completed", {})).json()
    assert fired["deliveries"] == 8
    created = await sandbox.deliveries(customerId=customer)
    assert len([d for d in created if d["eventId"] == fired["eventId"]]) == 8
    assert (await _fire(sandbox, customer, "dnc.added", {})).json()["deliveries"] == 0


# -- believable generated history (issue 16 item 9) -----------------------------------------


async def _history(sb: Sandbox, customer: str, count: int) -> list[dict[str, Any]]:
    window = {"from": "2026-01-01T00:00:00Z", "till": "2026-01-20T00:00:00Z"}
    await sb.admin_post(f"/accounts/{customer}/cdrs/generate", {"count": count, **window})
    h = sb.bearer(await sb.token(customer, ["read:cdrs"]))
    r = await sb.client.get("/v1/cdrs", params={**window, "limit": "1000"}, headers=h)
    calls: list[dict[str, Any]] = r.json()["calls"]
    assert len(calls) == count
    return calls


async def test_generated_numbers_are_valid_for_the_country_they_name(sandbox: Sandbox) -> None:
    """Every generated destination is a valid number (phonenumbers) of the country the CDR
    names, and that name is the one the number's country has (never "International" for
    an invalid number); calls come from the lines' own numbers, mostly to their countries."""
    customer = await sandbox.account()
    await sandbox.agent(customer, label="London", callerId="+442071838700")
    await sandbox.agent(customer, label="SF", callerId="+14155550100")
    calls = await _history(sandbox, customer, 1000)
    names = json.loads((FIXTURES / "country_names.json").read_bytes())["names"]
    regions = set()
    for cdr in calls:
        number = phonenumbers.parse(cdr["dst"])
        assert phonenumbers.is_valid_number(number), cdr
        region = phonenumbers.region_code_for_number(number)
        regions.add(region)
        assert cdr["country"] == names[region], cdr
        assert cdr["country"] == sandbox.rt.rates.rate_for(cdr["dst"]).country
        assert phonenumbers.is_valid_number(phonenumbers.parse(cdr["src"])), cdr
    assert len(regions) >= 10  # believable spread
    domestic = sum(
        1
        for c in calls
        if phonenumbers.region_code_for_number(phonenumbers.parse(c["dst"]))
        == phonenumbers.region_code_for_number(phonenumbers.parse(c["src"]))
    )
    assert domestic > len(calls) / 2


async def test_no_generated_call_is_on_an_unprovisioned_line(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    live = await sandbox.agent(customer, label="Live")
    pending = await sandbox.agent(customer, label="Pending trunk", provisioned=False)
    calls = await _history(sandbox, customer, 300)
    assert {c["sipUsername"] for c in calls} == {live["sipUsername"]}
    assert pending["sipUsername"] not in {c["sipUsername"] for c in calls}
    # The demo account's history neither: unl_003 is its unprovisioned line.
    async with read(sandbox.rt.engine) as conn:
        demo = (
            await conn.execute(
                select(cdrs.c.sip_username, func.count())
                .where(cdrs.c.account_id == 1042)
                .group_by(cdrs.c.sip_username)
            )
        ).all()
    assert demo and "unl_003" not in {name for name, _ in demo}, demo


async def test_the_same_seed_generates_the_same_history(fresh: Any) -> None:
    histories = []
    for _ in range(2):
        async with fresh(seed=99) as sb:
            customer = await sb.account()
            await sb.agent(customer, label="Seat", sipUsername="unl_seed_1")
            histories.append((customer, await _history(sb, customer, 200)))
    assert histories[0] == histories[1]


async def test_deliveries_without_any_filter_are_listed(sandbox: Sandbox) -> None:
    r = await sandbox.client.get("/_sandbox/deliveries", headers=sandbox.admin)
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["deliveries"], list)
