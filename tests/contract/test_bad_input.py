"""The bad-input corpus: odd bytes at every operation. Each answer is a status the contract
lists (checked by the response hook), in the error envelope, never a 500 — and a rejected
request changes nothing in the database."""

from __future__ import annotations

import json

import pytest

from tests.support.db import fingerprint
from tests.support.sandbox import Sandbox

DEEP = b"[" * 5000 + b"]" * 5000
DEEP_OBJ = ('{"a":' * 3000 + "1" + "}" * 3000).encode()
BODIES: list[tuple[str, bytes, str]] = [
    ("malformed", b'{"aiAgentId": "27",', "application/json"),
    ("not an object", b"[1, 2, 3]", "application/json"),
    ("string", b'"hello"', "application/json"),
    ("number", b"1e999999", "application/json"),
    ("null", b"null", "application/json"),
    ("empty", b"", "application/json"),
    ("whitespace", b"   \n ", "application/json"),
    ("nul bytes", b'{"aiAgentId": "2\x007", "toNumber": "+1415\x005551234"}', "application/json"),
    (
        "escaped nul",
        b'{"aiAgentId": "27\\u0000", "event": "call.ended\\u0000"}',
        "application/json",
    ),
    ("invalid utf-8", b'{"aiAgentId": "\xff\xfe", "toNumber": "\xc3\x28"}', "application/json"),
    (
        "lone surrogate",
        b'{"toNumber": "\\ud800", "target_url": "https://\\udfff"}',
        "application/json",
    ),
    ("deeply nested array", DEEP, "application/json"),
    ("deeply nested object", DEEP_OBJ, "application/json"),
    (
        "10 KB strings",
        json.dumps(
            {
                "aiAgentId": "9" * 10240,
                "toNumber": "+" + "1" * 10240,
                "event": "x" * 10240,
                "target_url": "https://a/" + "b" * 10240,
            }
        ).encode(),
        "application/json",
    ),
    (
        "wrong types",
        json.dumps(
            {
                "aiAgentId": ["27"],
                "toNumber": {"n": 1},
                "event": 7,
                "target_url": False,
                "fromNumber": 1.5,
                "metadata": 3,
            }
        ).encode(),
        "application/json",
    ),
    (
        "huge numbers",
        json.dumps({"aiAgentId": 10**400, "toNumber": -(10**30)}).encode(),
        "application/json",
    ),
    (
        "empty strings",
        json.dumps({"aiAgentId": "", "toNumber": "", "event": "", "target_url": ""}).encode(),
        "application/json",
    ),
    ("missing fields", b"{}", "application/json"),
    ("extra fields only", b'{"unexpected": true, "__proto__": {}}', "application/json"),
    (
        "odd unicode",
        json.dumps(
            {
                "aiAgentId": "٢٧",
                "toNumber": "＋１４１５５５５１２３４",
                "event": "call.endeⅾ",
                "target_url": "https://exámple.com/\u202e",
            }
        ).encode(),
        "application/json",
    ),
    ("form body", b"aiAgentId=27&toNumber=%2B14155551234", "application/x-www-form-urlencoded"),
    ("xml body", b"<call><to>+14155551234</to></call>", "application/xml"),
    ("text body", b'{"aiAgentId": "27"}', "text/plain"),
    ("over the size limit", b'{"x": "' + b"a" * 70_000 + b'"}', "application/json"),
]
WRITE_OPS = [("POST", "/v1/calls"), ("POST", "/v1/hooks")]
READ_OPS = [("GET", "/v1/me"), ("GET", "/v1/balance"), ("GET", "/v1/agents"), ("GET", "/v1/cdrs")]


@pytest.fixture
async def caller(sandbox: Sandbox) -> dict[str, str]:
    customer, token, _ = await sandbox.customer_with_agent()
    return {**sandbox.bearer(token), "X-Test-Customer": customer}


@pytest.mark.parametrize(("label", "body", "ctype"), BODIES, ids=[b[0] for b in BODIES])
@pytest.mark.parametrize(("method", "path"), WRITE_OPS)
async def test_bad_bodies_are_rejected_and_change_nothing(
    sandbox: Sandbox,
    caller: dict[str, str],
    method: str,
    path: str,
    label: str,
    body: bytes,
    ctype: str,
) -> None:
    before = await fingerprint(sandbox, caller["X-Test-Customer"])
    r = await sandbox.client.request(
        method, path, content=body, headers={**caller, "Content-Type": ctype}
    )
    assert r.status_code in (400, 404), (label, r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] in ("invalid_input", "ai_agent_not_found")
    if label == "over the size limit":  # the contract lists 400, not 413
        assert r.json() == {
            "error": "invalid_input",
            "message": f"Request body larger than {sandbox.settings.max_body_bytes} bytes.",
        }
    assert await fingerprint(sandbox, caller["X-Test-Customer"]) == before


@pytest.mark.parametrize(
    "query",
    [
        "limit=5&limit=6",
        "from=2026-01-01T00:00:00Z&from=2026-01-02T00:00:00Z",
        "limit=%00",
        "limit=",
        "limit=1e3",
        "limit=0x10",
        "limit=%E2%91%A0",
        "from=%ff%fe",
        "till=%00",
        "from=" + "9" * 5000,
        "limit=" + "1" * 5000,
        "from=2026-01-01T00:00:00Z&till=nope",
        "from=0001-01-01T00:00:00Z&till=9999-12-31T23:59:59Z",
        "till=2026-01-01T00:00:00+99:00",
    ],
)
async def test_malformed_or_repeated_query_parameters(
    sandbox: Sandbox, caller: dict[str, str], query: str
) -> None:
    r = await sandbox.client.get(f"/v1/cdrs?{query}", headers=caller)
    assert r.status_code == 400, (query, r.text)
    assert r.json()["error"] in (
        "invalid_input",
        "invalid_timestamp",
        "window_too_wide",
        "till_must_be_after_from",
    )


async def test_unknown_query_parameters_are_ignored(
    sandbox: Sandbox, caller: dict[str, str]
) -> None:
    for method, path in READ_OPS:
        r = await sandbox.client.request(method, f"{path}?utm=1&x=%00", headers=caller)
        assert r.status_code == 200


@pytest.mark.parametrize(
    "hook_id",
    [
        "not-a-uuid",
        "00000000000000000000000000000000",
        "%00",
        "' OR 1=1 --",
        "7d7b1a52-3c6f-4c57-9a0b-0d8a3f2b9e1g",
        "7d7b1a52-3c6f-4c57-9a0b-0d8a3f2b9e11-extra",
        "é" * 36,
    ],
)
async def test_non_uuid_hook_ids_are_400(
    sandbox: Sandbox, caller: dict[str, str], hook_id: str
) -> None:
    before = await fingerprint(sandbox, caller["X-Test-Customer"])
    r = await sandbox.client.delete(f"/v1/hooks/{hook_id}", headers=caller)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_input")
    assert await fingerprint(sandbox, caller["X-Test-Customer"]) == before


async def test_path_traversal_in_an_id_is_just_not_found(
    sandbox: Sandbox, caller: dict[str, str]
) -> None:
    r = await sandbox.client.delete("/v1/hooks/..%2f..%2fetc", headers=caller)
    assert (r.status_code, r.json()["error"]) in ((400, "invalid_input"), (404, "not_found"))


async def test_other_accounts_ids_are_invisible(sandbox: Sandbox) -> None:
    owner, owner_token, owner_agent = await sandbox.customer_with_agent()
    intruder, intruder_token, _ = await sandbox.customer_with_agent()
    hook = (
        await sandbox.client.post(
            "/v1/hooks",
            json={"event": "call.ended", "target_url": "https://example.com/x"},
            headers=sandbox.bearer(owner_token),
        )
    ).json()
    before = [await fingerprint(sandbox, c) for c in (owner, intruder)]
    h = sandbox.bearer(intruder_token)
    r = await sandbox.client.delete(f"/v1/hooks/{hook['id']}", headers=h)
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = await sandbox.client.post(
        "/v1/calls", json={"aiAgentId": owner_agent, "toNumber": "+14155551234"}, headers=h
    )
    assert (r.status_code, r.json()["error"]) == (404, "ai_agent_not_found")
    assert r.json()["message"] == "No agent with that ID on this account."
    assert [await fingerprint(sandbox, c) for c in (owner, intruder)] == before
    assert owner


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer unl_live_",
        "Bearer UNL_LIVE_abcdefabcdefabcdefabcdefabcdefabcdef",
        "Bearer unl_test_abcdefabcdefabcdefabcdefabcdefabcdef",
        "Token unl_live_abc",
        "Bearer\tunl_live_abc",
        "bearer",
        "Bearer unl_live_" + "A" * 5000,
        "Bearer unl_live_'; DROP TABLE tokens; --",
        "Bearer unl_live_%00",
    ],
)
@pytest.mark.parametrize(("method", "path"), READ_OPS + WRITE_OPS)
async def test_junk_tokens_are_401(
    sandbox: Sandbox, authorization: str, method: str, path: str
) -> None:
    r = await sandbox.client.request(
        method,
        path,
        headers={"Authorization": authorization.encode("latin-1")},
        json={"aiAgentId": "27", "toNumber": "+14155551234"} if method == "POST" else None,
    )
    assert (r.status_code, r.json()["error"]) == (401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer ")


async def test_a_token_with_a_trailing_character_is_someone_else(sandbox: Sandbox) -> None:
    token = await sandbox.token(await sandbox.account())
    for variant in (token + "x", token[:-1], token.upper(), token + "=="):
        r = await sandbox.client.get("/v1/me", headers={"Authorization": f"Bearer {variant}"})
        assert r.status_code == 401, variant
    # RFC 7235: `credentials = auth-scheme 1*SP token68` — several spaces are still valid.
    r = await sandbox.client.get("/v1/me", headers={"Authorization": f"Bearer   {token}"})
    assert r.status_code == 200
