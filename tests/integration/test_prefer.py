"""Prefer: code=<status> / error=<code> forces one /v1 answer, listed by the contract,
without side effects and before authentication."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.db import fingerprint
from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.prefer import FORCEABLE

OPS = {
    "getMe": ("GET", "/v1/me"),
    "getBalance": ("GET", "/v1/balance"),
    "listCdrs": ("GET", "/v1/cdrs"),
    "listAgents": ("GET", "/v1/agents"),
    "originateCall": ("POST", "/v1/calls"),
    "createHook": ("POST", "/v1/hooks"),
    "deleteHook": ("DELETE", "/v1/hooks/7d7b1a52-3c6f-4c57-9a0b-0d8a3f2b9e11"),
}
CASES = [
    (op, status, code)
    for op, table in FORCEABLE.items()
    for status, codes in table.items()
    for code in codes
]


@pytest.fixture
async def valid(sandbox: Sandbox) -> dict[str, Any]:
    customer, token, agent_id = await sandbox.customer_with_agent()
    return {
        "customer": customer,
        "headers": sandbox.bearer(token),
        "calls": {"aiAgentId": agent_id, "toNumber": "+14155551234"},
        "hooks": {"event": "call.ended", "target_url": "https://example.com/h"},
    }


async def _send(sb: Sandbox, op: str, prefer: str, valid: dict[str, Any]) -> Any:
    method, path = OPS[op]
    body = (
        valid["calls"] if op == "originateCall" else valid["hooks"] if op == "createHook" else None
    )
    return await sb.client.request(
        method, path, json=body, headers={**valid["headers"], "Prefer": prefer}
    )


@pytest.mark.parametrize(("op", "status", "code"), CASES)
async def test_every_listed_error_can_be_forced_without_side_effects(
    sandbox: Sandbox, valid: dict[str, Any], op: str, status: int, code: str
) -> None:
    before = await fingerprint(sandbox, valid["customer"])
    for prefer in (f"code={status}, error={code}", f"error={code}"):
        r = await _send(sandbox, op, prefer, valid)
        assert (r.status_code, r.json()["error"]) == (status, code), prefer
        assert "forced" in r.json()["message"]
        if status == 401:
            assert r.headers["www-authenticate"].startswith("Bearer ")
    r = await _send(sandbox, op, f"code={status}", valid)
    assert (r.status_code, r.json()["error"]) == (status, FORCEABLE[op][status][0])
    assert await fingerprint(sandbox, valid["customer"]) == before


async def test_forcing_needs_no_token(sandbox: Sandbox) -> None:
    r = await sandbox.client.post("/v1/calls", headers={"Prefer": "code=503"}, json={})
    assert (r.status_code, r.json()["error"]) == (503, "engine_not_configured")


@pytest.mark.parametrize(
    ("op", "prefer"),
    [
        ("getMe", "code=500"),
        ("getMe", "error=dialer_required"),
        ("listAgents", "code=404"),
        ("originateCall", "code=409, error=originate_failed"),
        ("createHook", "code=abc"),
        ("deleteHook", "code=200"),
        ("getBalance", "error=nope"),
    ],
)
async def test_unlisted_combinations_say_what_is_allowed(
    sandbox: Sandbox, valid: dict[str, Any], op: str, prefer: str
) -> None:
    r = await _send(sandbox, op, prefer, valid)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_prefer")
    if "abc" not in prefer:
        assert "can be forced to: code=" in r.json()["message"]


async def test_other_preferences_change_nothing(sandbox: Sandbox, valid: dict[str, Any]) -> None:
    r = await _send(sandbox, "getMe", "return=minimal, respond-async", valid)
    assert r.status_code == 200
