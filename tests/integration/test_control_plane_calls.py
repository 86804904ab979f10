"""``POST /_sandbox/accounts/{customerId}/calls``: the dashboard places calls with the admin
token, through the same service as ``POST /v1/calls``, and mints no token doing so."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.sandbox import Sandbox


async def _tokens(sandbox: Sandbox, customer: str) -> list[dict[str, Any]]:
    r = await sandbox.client.get(f"/_sandbox/accounts/{customer}/overview", headers=sandbox.admin)
    assert r.status_code == 200, r.text
    tokens: list[dict[str, Any]] = r.json()["tokens"]
    return tokens


async def test_control_plane_places_a_call_and_mints_no_token(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    agent = (await sandbox.agent(customer))["id"]
    r = await sandbox.client.post(
        f"/_sandbox/accounts/{customer}/calls",
        json={"aiAgentId": agent, "toNumber": "+15005550008", "metadata": {"from": "test"}},
        headers=sandbox.admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued"
    ended = await sandbox.wait_call(r.json()["callId"])
    assert (ended["customerId"], ended["aiAgentId"]) == (customer, agent)
    assert (ended["outcome"], ended["scenario"]) == ("answered", "lead_completed")
    assert await _tokens(sandbox, customer) == []


async def test_control_plane_call_answers_as_v1_calls_does(sandbox: Sandbox) -> None:
    """Same body, same answers: every case sent to both routes for the same account."""
    customer, token, agent = await sandbox.customer_with_agent()
    bodies: list[Any] = [
        {},
        [],
        {"aiAgentId": agent},
        {"aiAgentId": agent, "toNumber": "4155551234"},
        {"aiAgentId": agent, "toNumber": "+14155551234", "fromNumber": None},
        {"aiAgentId": agent, "toNumber": "+14155551234", "metadata": "x"},
        {"aiAgentId": "999999", "toNumber": "+14155551234"},
        {"aiAgentId": agent, "toNumber": "+15005550002"},
    ]

    async def both(body: Any) -> list[tuple[int, Any]]:
        answers = []
        for path, headers in (
            ("/v1/calls", sandbox.bearer(token)),
            (f"/_sandbox/accounts/{customer}/calls", sandbox.admin),
        ):
            r = await sandbox.client.post(path, json=body, headers=headers)
            data = r.json()
            if r.status_code == 200:
                data = {**data, "callId": "<id>"}
            answers.append((r.status_code, data))
        return answers

    for body in bodies:
        v1, control = await both(body)
        assert v1 == control, body
    # The forcing number for an upstream rejection: 502 on both. (Sent without the harness's
    # hook, which takes any 5xx outside /v1 for a crash; this one is the contract's 502.)
    reject = {"aiAgentId": agent, "toNumber": "+15005550001"}
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=30) as raw:
        rejected = [
            await raw.post("/v1/calls", json=reject, headers=sandbox.bearer(token)),
            await raw.post(
                f"/_sandbox/accounts/{customer}/calls", json=reject, headers=sandbox.admin
            ),
        ]
    assert [(r.status_code, r.json()) for r in rejected] == 2 * [
        (502, {"error": "originate_failed", "message": "Upstream rejected the originate."})
    ]
    v1, control = await both({"aiAgentId": agent, "toNumber": "+15005550002"})
    assert v1 == control == (200, {"callId": "<id>", "status": "queued"})
    for patch in ({"dialerEnabled": False}, {"provisioned": False}):
        await sandbox.patch_account(customer, **patch)
        v1, control = await both({"aiAgentId": agent, "toNumber": "+14155551234"})
        assert v1[0] >= 400 and v1 == control, patch
        await sandbox.patch_account(customer, dialerEnabled=True, provisioned=True)
    # A suspended account: the body is checked first (400 on both), then the contract's
    # 502 (raw client: the harness's hook takes a 5xx outside /v1 for a crash).
    await sandbox.patch_account(customer, status="suspended")
    bogus, control_bogus = await both({"bogus": True})
    assert bogus == control_bogus and bogus[0] == 400
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=30) as raw:
        suspended = [
            await raw.post(
                "/v1/calls",
                json={"aiAgentId": agent, "toNumber": "+14155551234"},
                headers=sandbox.bearer(token),
            ),
            await raw.post(
                f"/_sandbox/accounts/{customer}/calls",
                json={"aiAgentId": agent, "toNumber": "+14155551234"},
                headers=sandbox.admin,
            ),
        ]
    assert [(r.status_code, r.json()) for r in suspended] == 2 * [
        (
            502,
            {
                "error": "originate_failed",
                "message": "Upstream rejected the originate: account suspended.",
            },
        )
    ]
    await sandbox.patch_account(customer, status="active")


@pytest.mark.parametrize(
    ("customer", "headers", "status", "error"),
    [
        ("1042", {}, 401, "unauthorized"),
        ("1042", {"Authorization": "Bearer wrong"}, 401, "unauthorized"),
        ("99999999", None, 404, "not_found"),
        ("abc", None, 404, "not_found"),
    ],
)
async def test_control_plane_call_needs_the_admin_token_and_an_account(
    sandbox: Sandbox, customer: str, headers: dict[str, str] | None, status: int, error: str
) -> None:
    r = await sandbox.client.post(
        f"/_sandbox/accounts/{customer}/calls",
        json={"aiAgentId": "1", "toNumber": "+14155551234"},
        headers=sandbox.admin if headers is None else headers,
    )
    assert (r.status_code, r.json()["error"]) == (status, error)
