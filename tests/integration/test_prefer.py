"""Prefer: code=<status> / error=<code> forces one /v1 answer, listed by the contract,
without side effects and before authentication. A preference the operation cannot honour
is ignored (RFC 7240 §2): the request is answered as without it, and the answer says why
in X-Unlimcall-Prefer-Ignored — never with a status the operation does not list."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.db import fingerprint
from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.prefer import APPLIED, FORCEABLE, IGNORED

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
        "hooks": {"event": "call.ended", "target_url": f"{sandbox.base_url}/_sandbox/inbox/p"},
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
        assert r.headers[APPLIED] == f"code={status}, error={code}"
        assert IGNORED not in r.headers
        if status == 401:
            assert r.headers["www-authenticate"].startswith("Bearer ")
    r = await _send(sandbox, op, f"code={status}", valid)
    assert (r.status_code, r.json()["error"]) == (status, FORCEABLE[op][status][0])
    assert await fingerprint(sandbox, valid["customer"]) == before


async def test_forcing_needs_no_token(sandbox: Sandbox) -> None:
    r = await sandbox.client.post("/v1/calls", headers={"Prefer": "code=503"}, json={})
    assert (r.status_code, r.json()["error"]) == (503, "engine_not_configured")


# What each operation answers the "valid" request without a Prefer header.
NORMAL = {
    "getMe": 200,
    "getBalance": 200,
    "listCdrs": 200,
    "listAgents": 200,
    "originateCall": 200,
    "createHook": 200,
    "deleteHook": 404,  # an id no hook has
}


@pytest.mark.parametrize(
    ("op", "prefer"),
    [
        ("getMe", "code=500"),
        ("getMe", "error=dialer_required"),
        ("getBalance", "code=403"),
        ("getBalance", "error=account_suspended"),
        ("listCdrs", "code=413"),
        ("listAgents", "code=404"),
        ("listAgents", "code=400, error=invalid_input"),
        ("originateCall", "code=409, error=originate_failed"),
        ("originateCall", "code=403"),
        ("createHook", "code=abc"),
        ("createHook", "code=500"),
        ("deleteHook", "code=200"),
        ("deleteHook", "error=invalid_prefer"),
    ],
)
async def test_an_unusable_preference_is_ignored_and_says_why(
    sandbox: Sandbox, valid: dict[str, Any], op: str, prefer: str
) -> None:
    r = await _send(sandbox, op, prefer, valid)
    assert r.status_code == NORMAL[op], r.text
    assert APPLIED not in r.headers
    reason = r.headers[IGNORED]
    if "abc" in prefer:
        assert reason == 'code="abc" is not an HTTP status'
    else:
        assert reason.startswith(f"{op} lists no ")
        assert "it can be forced to: code=" in reason
    if r.status_code >= 400:
        assert r.json()["error"] == "not_found"


async def test_an_ignored_preference_is_reported_on_errors_too(sandbox: Sandbox) -> None:
    """Whatever answers — the gate (no token), the handler (bad body) — the reason is there;
    and several Prefer headers are one list."""
    r = await sandbox.client.get("/v1/me", headers={"Prefer": "code=500"})
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
    assert r.headers[IGNORED].startswith("getMe lists no 500;")
    h = sandbox.bearer(await sandbox.token(await sandbox.account()))
    r = await sandbox.client.post("/v1/hooks", content=b"{", headers={**h, "Prefer": "code=409"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input")
    assert r.headers[IGNORED].startswith("createHook lists no 409;")
    r = await sandbox.client.get(
        "/v1/balance",
        headers=httpx.Headers([*h.items(), ("Prefer", "return=minimal"), ("Prefer", "code=500")]),
    )
    assert (r.status_code, r.json()["error"]) == (500, "balance_unavailable")
    assert r.headers[APPLIED] == "code=500, error=balance_unavailable"


async def test_other_preferences_change_nothing(sandbox: Sandbox, valid: dict[str, Any]) -> None:
    r = await _send(sandbox, "getMe", "return=minimal, respond-async", valid)
    assert r.status_code == 200
    assert IGNORED not in r.headers and APPLIED not in r.headers
