"""OAuth 2.0 client_credentials end to end (RFC 6749 §4.4, §5.2; RFC 8414)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from tests.support.sandbox import Sandbox

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {**FORM, "Authorization": f"Basic {raw}"}


async def _client(sb: Sandbox, scopes: list[str]) -> tuple[str, dict[str, Any]]:
    customer = await sb.account()
    return customer, await sb.admin_post(f"/accounts/{customer}/oauth-clients", {"scopes": scopes})


async def test_basic_auth_flow_gives_a_token_that_works_on_v1(sandbox: Sandbox) -> None:
    customer, c = await _client(sandbox, ["read:balance", "read:cdrs"])
    r = await sandbox.client.post(
        "/oauth/token",
        content="grant_type=client_credentials",
        headers=basic(c["clientId"], c["clientSecret"]),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"].lower() == "bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "read:balance read:cdrs"
    assert r.headers["cache-control"] == "no-store"
    h = sandbox.bearer(body["access_token"])
    assert (await sandbox.client.get("/v1/balance", headers=h)).status_code == 200
    me = await sandbox.client.get("/v1/me", headers=h)
    assert me.json()["customerId"] == customer
    denied = await sandbox.client.get("/v1/agents", headers=h)
    assert denied.status_code == 401
    assert 'scope="read:agents"' in denied.headers["www-authenticate"]


async def test_post_auth_flow_with_a_narrower_scope(sandbox: Sandbox) -> None:
    _, c = await _client(sandbox, ["read:balance", "read:agents"])
    r = await sandbox.client.post(
        "/oauth/token",
        headers=FORM,
        content=f"grant_type=client_credentials&client_id={c['clientId']}"
        f"&client_secret={c['clientSecret']}&scope=read:agents",
    )
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "read:agents"
    h = sandbox.bearer(r.json()["access_token"])
    assert (await sandbox.client.get("/v1/agents", headers=h)).status_code == 200
    assert (await sandbox.client.get("/v1/balance", headers=h)).status_code == 401


async def test_wrong_secret_and_unknown_client_are_invalid_client(sandbox: Sandbox) -> None:
    _, c = await _client(sandbox, ["read:balance"])
    r = await sandbox.client.post(
        "/oauth/token",
        content="grant_type=client_credentials",
        headers=basic(c["clientId"], "wrong"),
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert r.headers["cache-control"] == "no-store"
    r = await sandbox.client.post(
        "/oauth/token",
        content="grant_type=client_credentials",
        headers=basic("unl_client_nope", "whatever"),
    )
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    r = await sandbox.client.post(
        "/oauth/token",
        headers=FORM,
        content=f"grant_type=client_credentials&client_id={c['clientId']}&client_secret=bad",
    )
    assert r.status_code in (400, 401)
    assert r.json()["error"] == "invalid_client"


async def test_unsupported_grant_and_foreign_scope(sandbox: Sandbox) -> None:
    _, c = await _client(sandbox, ["read:balance"])
    r = await sandbox.client.post(
        "/oauth/token",
        content="grant_type=password&username=a",
        headers=basic(c["clientId"], c["clientSecret"]),
    )
    assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")
    r = await sandbox.client.post(
        "/oauth/token",
        content="grant_type=client_credentials&scope=write:calls",
        headers=basic(c["clientId"], c["clientSecret"]),
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")
    r = await sandbox.client.post(
        "/oauth/token",
        content="grant_type=client_credentials&scope=read:everything",
        headers=basic(c["clientId"], c["clientSecret"]),
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")


async def test_malformed_token_requests(sandbox: Sandbox) -> None:
    _, c = await _client(sandbox, ["read:balance"])
    auth = basic(c["clientId"], c["clientSecret"])
    cases = [
        ({**auth, "Content-Type": "application/json"}, b'{"grant_type":"client_credentials"}'),
        (auth, b""),
        (auth, b"grant_type=client_credentials&grant_type=client_credentials"),
        (auth, b"grant_type=client_credentials&scope=\xff\xfe"),
        ({**FORM, "Authorization": "Basic !!!notbase64"}, b"grant_type=client_credentials"),
    ]
    for headers, body in cases:
        r = await sandbox.client.post("/oauth/token", content=body, headers=headers)
        assert 400 <= r.status_code < 500, (body, r.text)
        assert r.json()["error"] in (
            "invalid_request",
            "invalid_client",
            "unsupported_grant_type",
        ), r.text
        assert r.headers["cache-control"] == "no-store"


async def test_undecodable_basic_credentials_are_invalid_client(sandbox: Sandbox) -> None:
    """RFC 6749 §5.2 / RFC 7617: credentials that cannot be decoded are the client's
    failure to authenticate (401 with a Basic challenge), never a server error."""
    undecodable = [
        b"Basic /w==",  # base64 of 0xff: not UTF-8
        b"Basic " + base64.b64encode("j\u00f6rg:s\u00e9cret".encode("latin-1")),
        b"Basic " + base64.b64encode(b"no-colon-here"),
        "Basic é".encode(),
    ]
    for authorization in undecodable:
        r = await sandbox.client.post(
            "/oauth/token",
            content=b"grant_type=client_credentials",
            headers={**FORM, "Authorization": authorization},
        )
        assert r.status_code == 401, (authorization, r.text)
        assert r.json()["error"] == "invalid_client"
        assert r.headers["www-authenticate"].startswith("Basic realm=")
        assert r.headers["cache-control"] == "no-store"


async def test_oauth_token_expires(fresh: Any) -> None:
    async with fresh(oauth_token_ttl=1) as sb:
        _, c = await _client(sb, ["read:balance"])
        r = await sb.client.post(
            "/oauth/token",
            content="grant_type=client_credentials",
            headers=basic(c["clientId"], c["clientSecret"]),
        )
        h = sb.bearer(r.json()["access_token"])
        assert (await sb.client.get("/v1/balance", headers=h)).status_code == 200
        await asyncio.sleep(1.2)
        r = await sb.client.get("/v1/balance", headers=h)
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_discovery_metadata_points_here(sandbox: Sandbox) -> None:
    r = await sandbox.client.get("/.well-known/oauth-authorization-server")
    meta = r.json()
    assert meta["issuer"] == sandbox.base_url
    assert meta["token_endpoint"] == f"{sandbox.base_url}/oauth/token"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert "write:calls" in meta["scopes_supported"]
