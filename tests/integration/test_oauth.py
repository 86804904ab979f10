"""OAuth 2.0 client_credentials end to end (RFC 6749 §4.4, §5.2; RFC 7617; RFC 8414).

The tests named ``test_rfc…`` each hold the token endpoint to one clause, cited in the name
and the docstring.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

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
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")


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
        sb.wall.advance(1.5)  # the sandbox's wall clock, not this test, waits
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


# -- one test per RFC clause ----------------------------------------------------------------

CHALLENGE = 'Basic realm="UnlimCall Sandbox"'
# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")


async def _token(sb: Sandbox, body: str | bytes, headers: dict[str, str]) -> httpx.Response:
    return await sb.client.post("/oauth/token", content=body, headers=headers)


def _post_body(client_id: str, secret: str, extra: str = "") -> str:
    return f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}{extra}"


@pytest.mark.parametrize(
    "body",
    ["", "scope=read:balance", "grant_type=", "grant_type=&scope=read:balance"],
)
async def test_rfc6749_s4_4_2_a_missing_grant_type_is_invalid_request(
    sandbox: Sandbox, body: str
) -> None:
    """RFC 6749 §4.4.2: grant_type is REQUIRED; §5.2: a request "missing a required
    parameter" is ``invalid_request`` (not ``unsupported_grant_type``)."""
    _, c = await _client(sandbox, ["read:balance"])
    for headers, content in (
        (basic(c["clientId"], c["clientSecret"]), body),
        (
            FORM,
            "&".join(p for p in (body, f"client_id={c['clientId']}") if p)
            + f"&client_secret={c['clientSecret']}",
        ),
    ):
        r = await _token(sandbox, content, headers)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_request"), (content, r.text)
        assert r.json()["error_description"] == "The grant_type parameter is missing."
        assert r.headers["cache-control"] == "no-store"


async def test_rfc6749_s5_2_an_unknown_client_answers_exactly_like_a_wrong_secret(
    sandbox: Sandbox,
) -> None:
    """RFC 6749 §5.2 ``invalid_client`` ("unknown client" is one of its examples): over
    client_secret_post as over client_secret_basic, an unknown client id and a wrong secret
    get the same status, body and challenge, so nobody learns which client ids exist."""
    _, c = await _client(sandbox, ["read:balance"])
    answers = [
        await _token(sandbox, _post_body(c["clientId"], "wrong"), FORM),
        await _token(sandbox, _post_body("unl_client_0000000000deadbeef00", "wrong"), FORM),
        await _token(sandbox, _post_body("x" * 200, "wrong"), FORM),
        await _token(sandbox, "grant_type=client_credentials", basic(c["clientId"], "wrong")),
        await _token(sandbox, "grant_type=client_credentials", basic("unl_client_nope", "x")),
    ]
    seen = {(r.status_code, r.text, r.headers["www-authenticate"]) for r in answers}
    assert len(seen) == 1, seen
    r = answers[0]
    assert r.status_code == 401
    assert r.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
        "message": "Client authentication failed.",
    }


async def test_rfc6749_s2_3_1_one_authentication_method_per_request(sandbox: Sandbox) -> None:
    """RFC 6749 §2.3.1: "The client MUST NOT use more than one authentication method in each
    request" — HTTP Basic plus client_secret in the body is refused (§5.2
    ``invalid_request``: "utilizes more than one mechanism for authenticating the client"),
    even when both are right. A body client_id beside Basic only names the client (§3.2.1)
    and must name the same one."""
    _, c = await _client(sandbox, ["read:balance"])
    cid, secret = c["clientId"], c["clientSecret"]
    auth = basic(cid, secret)
    for body in (
        _post_body(cid, secret),
        f"grant_type=client_credentials&client_secret={secret}",
        f"grant_type=client_credentials&client_id={cid}&client_secret=",
        _post_body("unl_client_other", "wrong"),
    ):
        r = await _token(sandbox, body, auth)
        assert (r.status_code, r.json()["error"]) == (400, "invalid_request"), (body, r.text)
        assert "one authentication method" in r.json()["error_description"]
    r = await _token(sandbox, "grant_type=client_credentials&client_id=unl_client_other", auth)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_request")
    r = await _token(sandbox, f"grant_type=client_credentials&client_id={cid}", auth)
    assert r.status_code == 200, r.text


async def test_rfc7617_every_401_carries_the_basic_challenge_with_a_realm(
    sandbox: Sandbox,
) -> None:
    """RFC 7617 §2: the Basic challenge has a ``realm``; RFC 6749 §5.2: a client that tried
    the Authorization header gets 401 with a challenge matching its scheme; RFC 9110 §15.5.2:
    every 401 carries WWW-Authenticate. Every way to fail client authentication is checked."""
    customer, c = await _client(sandbox, ["read:balance"])
    cid = c["clientId"]
    failures = [
        ("grant_type=client_credentials", basic(cid, "wrong")),
        ("grant_type=client_credentials", basic("unl_client_nope", "wrong")),
        ("grant_type=client_credentials", basic(cid, "")),
        ("grant_type=client_credentials", {**FORM, "Authorization": "Basic /w=="}),
        ("grant_type=client_credentials", {**FORM, "Authorization": "Bearer unl_live_x"}),
        ("grant_type=client_credentials", FORM),
        (f"grant_type=client_credentials&client_id={cid}", FORM),
        (_post_body(cid, "wrong"), FORM),
        (_post_body("unl_client_nope", "wrong"), FORM),
    ]
    for body, headers in failures:
        r = await _token(sandbox, body, headers)
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client"), (body, headers)
        assert r.headers["www-authenticate"] == CHALLENGE, r.headers
        assert r.headers["cache-control"] == "no-store"
    # No 401 without one: the suspended account's client, too.
    await sandbox.patch_account(customer, status="suspended")
    r = await _token(sandbox, "grant_type=client_credentials", basic(cid, c["clientSecret"]))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == CHALLENGE


async def test_rfc6749_s5_2_error_descriptions_are_plain_ascii_english(
    sandbox: Sandbox,
) -> None:
    """RFC 6749 §5.2: error_description is "human-readable ASCII text" within
    %x20-21 / %x23-5B / %x5D-7E. No Python repr, nothing echoed that the character set does
    not allow (a quote, a backslash, non-ASCII), and never a 500 for it."""
    _, c = await _client(sandbox, ["read:balance"])
    auth = basic(c["clientId"], c["clientSecret"])
    requests = [
        ("grant_type=client_credentials", basic(c["clientId"], "wrong")),
        ("grant_type=%22password%5C%C3%A9", auth),
        ("grant_type=password", auth),
        ("grant_type=client_credentials&scope=%C3%A9t%C3%A9", auth),
        ("grant_type=client_credentials&scope=read:balance%20%22x%22", auth),
        ("grant_type=client_credentials&scope=write:calls", auth),
        ("grant_type=client_credentials&grant_type=client_credentials", auth),
        ("", auth),
        (_post_body(c["clientId"], c["clientSecret"]), auth),
    ]
    for body, headers in requests:
        r = await _token(sandbox, body, headers)
        assert 400 <= r.status_code < 500, (body, r.text)
        description = r.json()["error_description"]
        assert DESCRIPTION.fullmatch(description), (body, description)
        assert "['" not in description and "methods" not in description, description
        assert description.endswith("."), description
    r = await _token(sandbox, "grant_type=client_credentials", basic(c["clientId"], "wrong"))
    assert r.json()["error_description"] == "Client authentication failed."
    r = await _token(sandbox, "grant_type=password", auth)
    assert r.json() == {
        "error": "unsupported_grant_type",
        "error_description": "This server issues tokens for grant_type=client_credentials only.",
        "message": "This server issues tokens for grant_type=client_credentials only.",
    }


async def test_rfc6749_s5_2_a_suspended_accounts_client_is_invalid_client(
    sandbox: Sandbox,
) -> None:
    """RFC 6749 §5.2 ``invalid_client`` ("client authentication failed"): the clients of a
    suspended account get no token, by either method; told why, since they proved they hold
    the secret. Reactivated, they get tokens again; a wrong secret still says nothing more."""
    customer, c = await _client(sandbox, ["read:balance"])
    cid, secret = c["clientId"], c["clientSecret"]
    await sandbox.patch_account(customer, status="suspended")
    for body, headers in (
        ("grant_type=client_credentials", basic(cid, secret)),
        (_post_body(cid, secret), FORM),
    ):
        r = await _token(sandbox, body, headers)
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client"), r.text
        assert "suspended" in r.json()["error_description"]
    r = await _token(sandbox, "grant_type=client_credentials", basic(cid, "wrong"))
    assert r.json()["error_description"] == "Client authentication failed."
    await sandbox.patch_account(customer, status="active")
    r = await _token(sandbox, "grant_type=client_credentials", basic(cid, secret))
    assert r.status_code == 200, r.text


async def test_rfc8414_s2_metadata_has_every_required_member(sandbox: Sandbox) -> None:
    """RFC 8414 §2: issuer (no query or fragment) and response_types_supported are
    REQUIRED; token_endpoint too, as the implicit grant is not the only one; the
    response types are RFC 7591's, where a client_credentials client has none (§2.1): the
    registered ``none``, never an empty array that validators read as missing."""
    meta = (await sandbox.client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["response_types_supported"] == ["none"]
    parts = urlsplit(meta["issuer"])
    assert parts.scheme in ("http", "https") and not parts.query and not parts.fragment
    assert meta["token_endpoint"] == f"{meta['issuer']}/oauth/token"
    assert "authorization_endpoint" not in meta  # §2: no grant here uses one


async def test_rfc8414_metadata_validates_behind_an_https_public_url(fresh: Any) -> None:
    """RFC 8414 §2/§3 as authlib's own validator reads it (it wants an https issuer, so the
    sandbox advertises UNLIMCALL_PUBLIC_URL); the Host header changes nothing then."""
    async with fresh(public_url="https://sandbox.example.test/") as sb:
        for host in (None, "localhost", "evil.example"):
            headers = {} if host is None else {"Host": host}
            r = await sb.client.get("/.well-known/oauth-authorization-server", headers=headers)
            meta = r.json()
            assert meta["issuer"] == "https://sandbox.example.test"
            assert meta["token_endpoint"] == "https://sandbox.example.test/oauth/token"
            AuthorizationServerMetadata(meta).validate()


# -- the discovery document never echoes a Host it does not trust (issue 15 item 8) ---------


async def test_discovery_never_echoes_an_untrusted_host(sandbox: Sandbox) -> None:
    """``Host: evil.example`` (or any name that is not this machine's) gets the configured
    base URL; a loopback Host is echoed, as a local client reached the sandbox by it."""
    configured = sandbox.settings.base_url
    for host in (
        "evil.example",
        "evil.example:8080",
        "10.0.0.5",
        "127.0.0.1.evil.example",
        "localhost@evil.example",
        "",
    ):
        r = await sandbox.client.get(
            "/.well-known/oauth-authorization-server", headers={"Host": host}
        )
        assert r.status_code == 200, (host, r.text)
        meta = r.json()
        assert "evil" not in r.text and "10.0.0.5" not in r.text, host
        assert meta["issuer"] == configured, host
        assert meta["token_endpoint"] == f"{configured}/oauth/token"
        assert "Host" in r.headers["vary"]
    for host in ("localhost:4321", "127.0.0.1:9", "[::1]:8080"):
        r = await sandbox.client.get(
            "/.well-known/oauth-authorization-server", headers={"Host": host}
        )
        assert r.json()["issuer"] == f"http://{host}"


async def test_allowed_hosts_may_be_echoed_and_nothing_else(fresh: Any) -> None:
    """UNLIMCALL_ALLOWED_HOSTS names extra hosts (a CI service name, say) whose Host header
    is echoed in discovery and in the contract's servers; other names are not."""
    async with fresh(allowed_hosts=("sandbox.ci",)) as sb:
        r = await sb.client.get(
            "/.well-known/oauth-authorization-server", headers={"Host": "Sandbox.CI:8080"}
        )
        assert r.json()["issuer"] == "http://sandbox.ci:8080"
        r = await sb.client.get("/v1/openapi.json", headers={"Host": "sandbox.ci"})
        assert r.json()["servers"][0]["url"] == "http://sandbox.ci/v1"
        r = await sb.client.get(
            "/.well-known/oauth-authorization-server", headers={"Host": "evil.example"}
        )
        assert r.json()["issuer"] == sb.settings.base_url
