"""The /_sandbox control plane: guarded, strict about input, and it changes what /v1 sees."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.sandbox import Sandbox


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
