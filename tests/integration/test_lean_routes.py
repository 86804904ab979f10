"""The lean routes (``GET /v1/me``, ``/v1/balance``, ``/v1/cdrs``, ``POST /v1/calls``) are
answered inside Litestar's router, behind the same gate and middleware as every other
route: their answers are the contract's, their errors the same envelopes, and Prefer,
fault rules, CORS, the body limit, the log line and the metrics reach them as they reach
the ordinary handlers (``GET /v1/agents``, ``POST /v1/hooks`` stand in for those here)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar.handlers import ASGIRouteHandler, HTTPRouteHandler

from tests.support.contract import response_hook, spec
from tests.support.sandbox import Sandbox
from unlimcall_sandbox.logs import fields
from unlimcall_sandbox.server.api.gate import Gate
from unlimcall_sandbox.server.clock import iso

LEAN = {"getMe", "getBalance", "listCdrs", "originateCall"}
# What differs between two answers to the same request by design (the sandbox time header
# moves with the clock).
PER_REQUEST = {"date", "x-request-id", "x-unlimcall-sandbox-time"}


def _headers(r: httpx.Response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in r.headers.items() if k not in PER_REQUEST)


@pytest.fixture
async def clean(sandbox: Sandbox) -> AsyncIterator[Sandbox]:
    yield sandbox
    r = await sandbox.client.delete("/_sandbox/faults", headers=sandbox.admin)
    assert r.status_code == 200


def test_each_operation_is_one_route_behind_the_gate(sandbox: Sandbox) -> None:
    contract = {op["operationId"] for item in spec()["paths"].values() for op in item.values()}
    found: dict[str, list[Any]] = {}
    for route in sandbox.app.routes:
        for handler in getattr(route, "route_handlers", [getattr(route, "route_handler", None)]):
            operation = handler.opt.get("operation")
            if operation is not None:
                found.setdefault(operation, []).append(handler)
    assert set(found) == contract
    for operation, handlers in found.items():
        [handler] = handlers  # one handler per operation
        assert Gate in handler.resolve_middleware(), operation
        kind = ASGIRouteHandler if operation in LEAN else HTTPRouteHandler
        assert isinstance(handler, kind), operation


async def test_lean_answers_are_the_contracts(sandbox: Sandbox) -> None:
    sb = sandbox
    customer, token, agent_id = await sb.customer_with_agent(balance=42.5)
    h = sb.bearer(token)
    await sb.admin_post(f"/accounts/{customer}/cdrs/generate", {"count": 40})
    r = await sb.client.get("/v1/me", headers=h)
    assert r.json() == {
        "customerId": customer,
        "companyName": "Test Co",
        "primaryContactEmail": "qa@test.example",
    }
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    balance = (await sb.client.get("/v1/balance", headers=h)).json()
    assert (balance["balance"], balance["blocked"], balance["stale"]) == (42.5, False, False)
    now = sb.rt.clock.now()
    window = f"from={iso(now - 30 * 86400)}&till={iso(now)}"
    everything = (await sb.client.get(f"/v1/cdrs?{window}&limit=1000", headers=h)).json()
    assert everything["count"] == len(everything["calls"]) == 40
    for query, count in [(f"{window}&limit=7", 7), (f"limit=3&{window}", 3), ("", None)]:
        page = (await sb.client.get(f"/v1/cdrs?{query}", headers=h)).json()
        if count is not None:
            assert page["calls"] == everything["calls"][:count], query
    # Percent-encoded values and a trailing "&" read as Litestar reads them.
    till = iso(now).replace(":", "%3A")
    r = await sb.client.get(f"/v1/cdrs?till={till}&limit=%32&", headers=h)
    assert r.status_code == 200 and r.json()["count"] <= 2
    queued = await sb.client.post(
        "/v1/calls", json={"aiAgentId": agent_id, "toNumber": "+15005550002"}, headers=h
    )
    assert queued.json()["status"] == "queued"
    call = await sb.wait_call(queued.json()["callId"])
    assert (call["state"], call["outcome"]) == ("ended", "busy")


async def test_a_revoked_token_is_refused_at_once(sandbox: Sandbox) -> None:
    sb = sandbox
    token_id, token = await sb.token_with_id(await sb.account(), ["read:balance"])
    h = sb.bearer(token)
    for _ in range(2):  # the second is answered from the verifier's cache
        assert (await sb.client.get("/v1/balance", headers=h)).status_code == 200
    r = await sb.client.delete(f"/_sandbox/tokens/{token_id}", headers=sb.admin)
    assert r.status_code == 200
    assert (await sb.client.get("/v1/balance", headers=h)).status_code == 401


async def test_auth_errors_are_the_same_envelopes(sandbox: Sandbox) -> None:
    sb = sandbox
    customer = await sb.account()
    agents_only = sb.bearer(await sb.token(customer, scopes=["read:agents"]))
    balance_only = sb.bearer(await sb.token(customer, scopes=["read:balance"]))
    for headers in ({}, {"Authorization": "Bearer unl_live_nope"}, {"Authorization": "Basic x"}):
        lean = await sb.client.get("/v1/me", headers=headers)
        ordinary = await sb.client.get("/v1/agents", headers=headers)
        assert lean.status_code == ordinary.status_code == 401
        assert (lean.content, _headers(lean)) == (ordinary.content, _headers(ordinary))
    lean = await sb.client.get("/v1/balance", headers=agents_only)
    ordinary = await sb.client.get("/v1/agents", headers=balance_only)
    assert lean.status_code == ordinary.status_code == 401
    assert lean.json()["error"] == ordinary.json()["error"] == "unauthorized"
    assert lean.headers["www-authenticate"] == (
        'Bearer realm="unlimcall", error="insufficient_scope", scope="read:balance"'
    )
    await sb.patch_account(customer, status="suspended")
    r = await sb.client.get("/v1/me", headers=balance_only)
    assert (r.status_code, r.json()["error"]) == (403, "account_suspended")


async def test_a_wrong_method_is_refused_before_authentication(sandbox: Sandbox) -> None:
    for method, lean, ordinary, allow in [
        ("PUT", "/v1/me", "/v1/agents", "GET, HEAD, OPTIONS"),
        ("GET", "/v1/calls", "/v1/hooks", "OPTIONS, POST"),
    ]:
        r = await sandbox.client.request(method, lean)  # no token: 405 all the same
        same = await sandbox.client.request(method, ordinary)
        assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
        assert (r.content, _headers(r)) == (same.content, _headers(same))
        assert r.headers["allow"] == allow


@pytest.mark.parametrize(
    ("content", "content_type", "code"),
    [
        (b"{", "application/json", "invalid_input"),
        (b"", "application/json", "invalid_input"),
        (b"   ", "application/json", "invalid_input"),
        (b"\xff\xfe", "application/json", "invalid_input"),
        (b"[" * 50_000, "application/json", "invalid_input"),
        (b'{"event": "call.ended"}', "text/plain", "invalid_input"),
    ],
)
async def test_body_errors_are_the_same_envelopes(
    sandbox: Sandbox, content: bytes, content_type: str, code: str
) -> None:
    h = {
        **sandbox.bearer(await sandbox.token(await sandbox.account())),
        "Content-Type": content_type,
    }
    lean = await sandbox.client.post("/v1/calls", content=content, headers=h)
    ordinary = await sandbox.client.post("/v1/hooks", content=content, headers=h)
    assert (lean.status_code, lean.json()["error"]) == (400, code)
    assert (lean.content, _headers(lean)) == (ordinary.content, _headers(ordinary))


async def test_originate_errors_come_from_the_service(sandbox: Sandbox) -> None:
    sb = sandbox
    _, token, agent_id = await sb.customer_with_agent()
    h = sb.bearer(token)
    cases = [
        ([1, 2], 400, "invalid_input"),
        ({"aiAgentId": "999999", "toNumber": "+14155551234"}, 404, "ai_agent_not_found"),
        ({"aiAgentId": agent_id, "toNumber": "12"}, 400, "invalid_input"),
        ({"aiAgentId": agent_id, "toNumber": "+15005550001"}, 502, "originate_failed"),
    ]
    for body, status, code in cases:
        r = await sb.client.post("/v1/calls", json=body, headers=h)
        assert (r.status_code, r.json()["error"]) == (status, code), body


async def test_the_body_limit_is_the_same_for_every_route(sandbox: Sandbox) -> None:
    h = {
        **sandbox.bearer(await sandbox.token(await sandbox.account())),
        "Content-Type": "application/json",
    }
    limit = sandbox.settings.max_body_bytes
    big = b'{"pad": "' + b"x" * limit + b'"}'

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield big[: limit // 2]
        yield big[limit // 2 :]

    answers = []
    for path in ("/v1/calls", "/v1/hooks"):
        answers.append(await sandbox.client.post(path, content=big, headers=h))
        answers.append(await sandbox.client.post(path, content=streamed(), headers=h))
    # The contract lists 400 (and no 413) for both: invalid_input, saying the limit.
    assert {(r.status_code, r.content) for r in answers} == {
        (
            400,
            b'{"error":"invalid_input","message":"Request body larger than %d bytes."}' % limit,
        )
    }


async def test_prefer_reaches_lean_routes_before_auth(sandbox: Sandbox) -> None:
    for method, path, prefer, status, code in [
        ("GET", "/v1/me", "code=403", 403, "account_suspended"),
        ("GET", "/v1/balance", "error=balance_unavailable", 500, "balance_unavailable"),
        ("GET", "/v1/cdrs", "code=409", 409, "account_not_provisioned"),
        ("POST", "/v1/calls", "code=503", 503, "engine_not_configured"),
        ("GET", "/v1/me", "code=500", 401, "unauthorized"),  # ignored: not listed
    ]:
        r = await sandbox.client.request(method, path, headers={"Prefer": prefer})
        assert (r.status_code, r.json()["error"]) == (status, code), (path, prefer)
        applied = r.headers.get("preference-applied")
        assert applied == (None if status == 401 else f"code={status}, error={code}")


async def test_fault_rules_reach_lean_routes(clean: Sandbox) -> None:
    sb = clean
    mine, other = await sb.account(), await sb.account()
    h, other_h = sb.bearer(await sb.token(mine)), sb.bearer(await sb.token(other))
    made = await sb.admin_post(
        "/faults", {"operation": "getMe", "action": "error", "status": 401, "customerId": mine}
    )
    r = await sb.client.get("/v1/me", headers=h)
    assert (r.status_code, r.json()["message"]) == (401, f"Injected by fault rule {made['id']}.")
    assert r.headers["www-authenticate"].startswith('Bearer realm="unlimcall"')
    assert (await sb.client.get("/v1/me", headers=other_h)).status_code == 200
    slow = await sb.admin_post(
        "/faults", {"operation": "listCdrs", "action": "latency", "latencyMs": 1}
    )
    assert (await sb.client.get("/v1/cdrs", headers=h)).status_code == 200
    listed = (await sb.client.get("/_sandbox/faults", headers=sb.admin)).json()["faults"]
    assert [f["fired"] for f in listed if f["id"] == slow["id"]] == [1]
    await sb.admin_post("/faults", {"operation": "getBalance", "action": "drop", "count": 1})
    async with httpx.AsyncClient(
        base_url=sb.base_url, event_hooks={"response": [response_hook]}
    ) as raw:
        with pytest.raises(httpx.RemoteProtocolError):
            await raw.get("/v1/balance", headers=h)
        assert (await raw.get("/v1/balance", headers=h)).status_code == 200


async def test_cors_reaches_lean_routes(sandbox: Sandbox) -> None:
    h = {
        **sandbox.bearer(await sandbox.token(await sandbox.account())),
        "Origin": "https://app.example",
    }
    lean = await sandbox.client.get("/v1/me", headers=h)
    ordinary = await sandbox.client.get("/v1/agents", headers=h)
    cors = sorted((k, v) for k, v in lean.headers.items() if k.startswith("access-control-"))
    assert ("access-control-allow-origin", "*") in cors
    assert cors == sorted(
        (k, v) for k, v in ordinary.headers.items() if k.startswith("access-control-")
    )
    plain = await sandbox.client.get("/v1/me", headers={"Authorization": h["Authorization"]})
    assert not [k for k in plain.headers if k.startswith("access-control-")]


async def test_log_line_and_metrics_cover_lean_routes(
    fresh: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with fresh(log_requests=True) as sb:
        h = sb.bearer(await sb.token(await sb.account()))
        with caplog.at_level(logging.INFO, logger="unlimcall.access"):
            r = await sb.client.get("/v1/me", headers={**h, "X-Request-Id": "lean-1"})
            bad = await sb.client.get("/v1/cdrs?limit=0", headers={**h, "X-Request-Id": "lean-2"})
        lines = {
            line["request_id"]: line
            for rec in caplog.records
            if rec.name == "unlimcall.access"
            for line in [fields(rec)]
        }
        assert r.headers["x-request-id"] == "lean-1" and bad.headers["x-request-id"] == "lean-2"
        assert {k: lines["lean-1"][k] for k in ("method", "path", "route", "status")} == {
            "method": "GET",
            "path": "/v1/me",
            "route": "/v1/me",
            "status": 200,
        }
        assert (lines["lean-2"]["route"], lines["lean-2"]["status"]) == ("/v1/cdrs", 400)
        text = (await sb.client.get("/metrics")).text
        assert 'unlimcall_http_requests_total{method="GET",route="/v1/me",status="200"} 1' in text
        assert 'unlimcall_http_requests_total{method="GET",route="/v1/cdrs",status="400"} 1' in text
