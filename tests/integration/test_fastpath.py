"""The fast path of GET /v1/me, /v1/balance, /v1/cdrs (``server.fastpath``): it answers
ordinary requests byte for byte as Litestar's handlers would, and leaves everything else,
every error included, to them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.clock import iso

IGNORED_HEADERS = {"date", "x-request-id"}


class Taken:
    """Records, request by request, whether the fast path answered."""

    def __init__(self, sb: Sandbox) -> None:
        self.middleware = sb.app.asgi_handler
        self.inner = self.middleware.fast
        self.log: list[bool] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        rest = await self.inner(scope, receive, send)
        self.log.append(rest is None)
        return rest

    def last(self) -> bool:
        return self.log[-1]


@pytest.fixture
async def taken(sandbox: Sandbox) -> AsyncIterator[Taken]:
    recorder = Taken(sandbox)
    recorder.middleware.fast = recorder
    try:
        yield recorder
    finally:
        recorder.middleware.fast = recorder.inner
        await sandbox.client.delete("/_sandbox/faults", headers=sandbox.admin)


async def answer(sb: Sandbox, path: str, headers: dict[str, str]) -> tuple[int, bytes, Any]:
    r = await sb.client.get(path, headers=headers)
    kept = sorted((k, v) for k, v in r.headers.items() if k not in IGNORED_HEADERS)
    return r.status_code, r.content, kept


async def test_fast_and_slow_paths_answer_alike(sandbox: Sandbox, taken: Taken) -> None:
    sb = sandbox
    customer = await sb.account()
    other = await sb.account()
    h = sb.bearer(await sb.token(customer))
    await sb.admin_post(f"/accounts/{customer}/cdrs/generate", {"count": 40})
    now = sb.rt.clock.now()
    window = f"from={iso(now - 30 * 86400)}&till={iso(now)}"
    cases = [
        ("getMe", "/v1/me"),
        ("getBalance", "/v1/balance"),
        ("listCdrs", f"/v1/cdrs?{window}"),
        ("listCdrs", f"/v1/cdrs?{window}&limit=7"),
        ("listCdrs", f"/v1/cdrs?limit=3&{window}"),
        ("listCdrs", "/v1/cdrs"),
    ]
    for operation, path in cases:
        await answer(sb, path, h)  # warms the fault-rule cache
        fast = await answer(sb, path, h)
        assert taken.last(), path
        # A rule for this operation (for another account: it never fires here) sends the
        # same request down Litestar's path.
        made = await sb.admin_post(
            "/faults",
            {"operation": operation, "action": "latency", "latencyMs": 1, "customerId": other},
        )
        slow = await answer(sb, path, h)
        assert not taken.last(), path
        await sb.client.delete(f"/_sandbox/faults/{made['id']}", headers=sb.admin)
        assert fast == slow, path
        assert fast[0] == 200
    body = (await sb.client.get(f"/v1/cdrs?{window}&limit=1000", headers=h)).json()
    assert body["count"] == len(body["calls"]) == 40


async def test_everything_else_goes_to_litestar(sandbox: Sandbox, taken: Taken) -> None:
    sb = sandbox
    customer = await sb.account()
    token = await sb.token(customer)
    h = sb.bearer(token)
    narrow = sb.bearer(await sb.token(customer, scopes=["read:agents"]))
    await sb.client.get("/v1/me", headers=h)
    cases: list[tuple[str, dict[str, str], int]] = [
        ("/v1/me", {}, 401),
        ("/v1/me", {"Authorization": "Bearer unl_live_nope"}, 401),
        ("/v1/balance", narrow, 401),
        ("/v1/me", {**h, "Prefer": "code=401"}, 401),
        ("/v1/me", {**h, "Origin": "https://app.example"}, 200),
        ("/v1/me?x=1", h, 200),
        ("/v1/cdrs?limit=1&limit=2", h, 400),
        ("/v1/cdrs?limit=abc", h, 400),
        ("/v1/cdrs?limit=%31", h, 200),
        ("/v1/cdrs?limit=1&", h, 200),
        ("/v1/cdrs?from=2026-01-02T00:00:00Z&till=2026-01-01T00:00:00Z", h, 400),
    ]
    for path, headers, status in cases:
        r = await sb.client.get(path, headers=headers)
        assert (path, r.status_code) == (path, status)
        assert not taken.last(), path
    r = await sb.client.get("/v1/me", headers={**h, "Origin": "https://app.example"})
    assert r.headers["access-control-allow-origin"] == "*"

    await sb.patch_account(customer, balanceUpstream="failing")
    r = await sb.client.get("/v1/balance", headers=h)
    assert (r.status_code, r.json()["error"], taken.last()) == (500, "balance_unavailable", False)
    await sb.patch_account(customer, status="suspended")
    r = await sb.client.get("/v1/me", headers=h)
    assert (r.status_code, taken.last()) == (403, False)


async def test_a_revoked_token_is_refused_at_once(sandbox: Sandbox, taken: Taken) -> None:
    sb = sandbox
    customer = await sb.account()
    token_id, token = await sb.token_with_id(customer, ["read:balance"])
    h = sb.bearer(token)
    for _ in range(2):
        assert (await sb.client.get("/v1/balance", headers=h)).status_code == 200
    assert taken.last()
    r = await sb.client.delete(f"/_sandbox/tokens/{token_id}", headers=sb.admin)
    assert r.status_code == 200
    assert (await sb.client.get("/v1/balance", headers=h)).status_code == 401


async def test_originate_on_the_fast_path(sandbox: Sandbox, taken: Taken) -> None:
    sb = sandbox
    _, token, agent_id = await sb.customer_with_agent()
    h = {**sb.bearer(token), "Content-Type": "application/json"}
    body = {"aiAgentId": agent_id, "toNumber": "+15005550002"}
    await sb.client.post("/v1/calls", json=body, headers=h)  # warms the fault-rule cache
    r = await sb.client.post("/v1/calls", json=body, headers=h)
    assert taken.last() and r.status_code == 200
    assert r.json()["status"] == "queued"
    assert r.headers["content-type"] == "application/json"
    call = await sb.wait_call(r.json()["callId"])
    assert call["state"] == "ended" and call["outcome"] == "busy"


async def test_originate_errors_are_litestars(sandbox: Sandbox, taken: Taken) -> None:
    sb = sandbox
    _, token, agent_id = await sb.customer_with_agent()
    auth = sb.bearer(token)
    json_h = {**auth, "Content-Type": "application/json"}
    ok = f'{{"aiAgentId": "{agent_id}", "toNumber": "+14155551234"}}'.encode()
    for _ in range(2):  # the first warms the fault-rule cache
        await sb.client.post("/v1/calls", content=ok, headers=json_h)
    assert taken.last()
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (b"{", json_h, 400, "invalid_input"),
        (b"", json_h, 400, "invalid_input"),
        (b"   ", json_h, 400, "invalid_input"),
        (b"\xff\xfe", json_h, 400, "invalid_input"),
        (b"[1, 2]", json_h, 400, "invalid_input"),
        (b"[" * 50_000, json_h, 400, "invalid_input"),
        (ok, {**auth, "Content-Type": "text/plain"}, 400, "invalid_input"),
        (b'{"aiAgentId": "999999", "toNumber": "+14155551234"}', json_h, 404, "ai_agent_not_found"),
        (f'{{"aiAgentId": "{agent_id}", "toNumber": "12"}}'.encode(), json_h, 400, "invalid_input"),
        (
            f'{{"aiAgentId": "{agent_id}", "toNumber": "+15005550001"}}'.encode(),
            json_h,
            502,
            "originate_failed",
        ),
        (b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}', json_h, 413, "payload_too_large"),
    ]
    for content, headers, status, code in cases:
        r = await sb.client.post("/v1/calls", content=content, headers=headers)
        assert (content[:20], r.status_code, r.json()["error"]) == (content[:20], status, code)
        assert not taken.last()  # the fast path had a look, then Litestar read the body
    r = await sb.client.post("/v1/calls", content=ok, headers=json_h)
    assert r.status_code == 200 and taken.last()
