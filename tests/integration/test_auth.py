"""Bearer auth on /v1: every operation × every scope, and every way a token can be bad."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.settings import ALL_SCOPES

# (method, path, required scope or None for any valid token)
OPERATIONS: list[tuple[str, str, str | None]] = [
    ("GET", "/v1/me", None),
    ("GET", "/v1/balance", "read:balance"),
    ("GET", "/v1/cdrs", "read:cdrs"),
    ("GET", "/v1/agents", "read:agents"),
    ("POST", "/v1/calls", "write:calls"),
    ("POST", "/v1/hooks", "write:hooks"),
    ("DELETE", "/v1/hooks/{hook}", "write:hooks"),
]
SUCCESS = {"DELETE": 204}


async def _request(
    sb: Sandbox, method: str, path: str, token: str, agent_id: str, hook_id: str
) -> Any:
    path = path.replace("{hook}", hook_id)
    body: dict[str, Any] | None = None
    if path == "/v1/calls":
        body = {"aiAgentId": agent_id, "toNumber": "+14155551234"}
    elif path == "/v1/hooks":
        body = {"event": "call.ended", "target_url": "https://example.com/hook"}
    return await sb.client.request(method, path, json=body, headers=sb.bearer(token))


@pytest.mark.parametrize("scope", ALL_SCOPES)
async def test_a_token_with_one_scope_opens_exactly_its_operations(
    sandbox: Sandbox, scope: str
) -> None:
    customer, full, agent_id = await sandbox.customer_with_agent()
    token = await sandbox.token(customer, [scope])
    for method, path, needed in OPERATIONS:
        hook = await sandbox.client.post(
            "/v1/hooks",
            json={"event": "call.ended", "target_url": "https://example.com/h"},
            headers=sandbox.bearer(full),
        )
        r = await _request(sandbox, method, path, token, agent_id, hook.json()["id"])
        if needed is None or needed == scope:
            assert r.status_code == SUCCESS.get(method, 200), (path, r.text)
        else:
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"] == "unauthorized"
            assert r.headers["www-authenticate"] == (
                f'Bearer realm="unlimcall", error="insufficient_scope", scope="{needed}"'
            )


@pytest.mark.parametrize(
    ("header", "error_fragment"),
    [
        (None, None),
        ("Basic dXNlcjpwYXNz", 'error="invalid_request"'),
        ("Bearer", 'error="invalid_request"'),
        ("Bearer unl_live_a b", 'error="invalid_token"'),
        ("Bearer not_a_token", 'error="invalid_token"'),
        ("Bearer unl_test_abcdefabcdefabcdefabcdefabcdefabcdef", 'error="invalid_token"'),
        ("Bearer unl_live_doesnotexistdoesnotexistdoesnotexist", 'error="invalid_token"'),
        ("Bearer unl_live_\u00e9\u00e9", 'error="invalid_token"'),
    ],
)
@pytest.mark.parametrize(("method", "path", "_scope"), OPERATIONS)
async def test_bad_credentials_are_401_with_rfc6750_header(
    sandbox: Sandbox,
    header: str | None,
    error_fragment: str | None,
    method: str,
    path: str,
    _scope: str | None,
) -> None:
    headers = {} if header is None else {"Authorization": header.encode("utf-8")}
    path = path.replace("{hook}", "7d7b1a52-3c6f-4c57-9a0b-0d8a3f2b9e11")
    r = await sandbox.client.request(
        method, path, headers=headers, json={} if method == "POST" else None
    )
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="unlimcall"')
    if error_fragment is None:
        assert "error=" not in challenge  # RFC 6750 §3.1: no error code without credentials
    else:
        assert error_fragment in challenge


async def test_scheme_is_case_insensitive(sandbox: Sandbox) -> None:
    token = await sandbox.token("1042", [])
    for scheme in ("bearer", "BEARER", "Bearer"):
        r = await sandbox.client.get("/v1/me", headers={"Authorization": f"{scheme} {token}"})
        assert r.status_code == 200


async def test_expired_token_is_rejected(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    token = await sandbox.token(customer, ["read:balance"], expires_in=1)
    assert (
        await sandbox.client.get("/v1/balance", headers=sandbox.bearer(token))
    ).status_code == 200
    sandbox.wall.advance(1.5)  # the sandbox's wall clock, not this test, waits
    r = await sandbox.client.get("/v1/balance", headers=sandbox.bearer(token))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert "expired" in r.json()["message"]


async def test_revoked_token_is_rejected_at_once(sandbox: Sandbox) -> None:
    customer = await sandbox.account()
    token_id, token = await sandbox.token_with_id(customer, ["read:agents"])
    assert (
        await sandbox.client.get("/v1/agents", headers=sandbox.bearer(token))
    ).status_code == 200
    r = await sandbox.client.delete(f"/_sandbox/tokens/{token_id}", headers=sandbox.admin)
    assert r.status_code == 200
    r = await sandbox.client.get("/v1/agents", headers=sandbox.bearer(token))
    assert r.status_code == 401
    again = await sandbox.client.delete(f"/_sandbox/tokens/{token_id}", headers=sandbox.admin)
    assert again.status_code == 404


async def test_a_suspended_account_gets_only_documented_answers(sandbox: Sandbox) -> None:
    """Contract-first (docs/statuses.md): 403 only where the contract lists it (/me); the
    balance says blocked; originating is the listed 502; everything else works."""
    sb = sandbox
    customer, token, agent_id = await sb.customer_with_agent()
    h = sb.bearer(token)
    assert (await sb.client.get("/v1/me", headers=h)).status_code == 200
    assert (await sb.client.get("/v1/balance", headers=h)).json()["blocked"] is False
    await sb.patch_account(customer, status="suspended")

    r = await sb.client.get("/v1/me", headers=h)
    assert (r.status_code, r.json()["error"]) == (403, "account_suspended")
    r = await sb.client.get("/v1/balance", headers=h)
    assert r.status_code == 200
    assert (r.json()["blocked"], r.json()["balance"]) == (True, 100.0)
    assert (await sb.client.get("/v1/cdrs", headers=h)).status_code == 200
    assert (await sb.client.get("/v1/agents", headers=h)).json()["count"] == 1
    call = {"aiAgentId": agent_id, "toNumber": "+14155551234"}
    r = await sb.client.post("/v1/calls", json=call, headers=h)
    assert (r.status_code, r.json()["error"]) == (502, "originate_failed")
    assert "account suspended" in r.json()["message"]
    # The body is still checked first: a bad one is the listed 400.
    r = await sb.client.post("/v1/calls", json={"toNumber": 5}, headers=h)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input")
    hook = {"event": "call.ended", "target_url": f"{sb.base_url}/_sandbox/inbox/suspended"}
    r = await sb.client.post("/v1/hooks", json=hook, headers=h)
    assert r.status_code == 200
    r = await sb.client.delete(f"/v1/hooks/{r.json()['id']}", headers=h)
    assert r.status_code == 204
    # A missing scope is still 401 (the scope is checked for a suspended account too).
    agents_only = sb.bearer(await sb.token(customer, scopes=["read:agents"]))
    r = await sb.client.get("/v1/balance", headers=agents_only)
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized")

    await sb.patch_account(customer, status="active")
    assert (await sb.client.get("/v1/me", headers=h)).status_code == 200
    assert (await sb.client.get("/v1/balance", headers=h)).json()["blocked"] is False
    assert (await sb.client.post("/v1/calls", json=call, headers=h)).status_code == 200


async def test_tokens_never_cross_accounts(sandbox: Sandbox) -> None:
    a = await sandbox.account(companyName="Alpha", primaryContactEmail="a@alpha.example")
    b = await sandbox.account(companyName="Beta", primaryContactEmail="b@beta.example")
    ta, tb = await sandbox.token(a), await sandbox.token(b)
    me_a = (await sandbox.client.get("/v1/me", headers=sandbox.bearer(ta))).json()
    me_b = (await sandbox.client.get("/v1/me", headers=sandbox.bearer(tb))).json()
    assert (me_a["customerId"], me_a["companyName"]) == (a, "Alpha")
    assert (me_b["customerId"], me_b["companyName"]) == (b, "Beta")
