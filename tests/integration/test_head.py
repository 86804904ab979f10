"""HEAD on every GET route: GET's status and headers, no body (RFC 9110 §9.3.2). Every
HEAD here goes through the harness, whose contract check takes a HEAD to a /v1 operation
as the GET without its body."""

from __future__ import annotations

import re
from typing import Any

import httpx
from litestar.handlers import ASGIRouteHandler
from litestar.routes import HTTPRoute

from tests.support.sandbox import Sandbox

# Differ between two answers by design: the date, the request id, the sandbox time header
# (it moves with the clock), and the framing of the body (its length changes where it holds
# the time; the server frames no HEAD body as chunked). Lengths are compared below where
# the body is stable.
PER_REQUEST = {
    "date",
    "x-request-id",
    "x-unlimcall-sandbox-time",
    "content-length",
    "transfer-encoding",
}


def _headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k not in PER_REQUEST}


def get_routes(sb: Sandbox) -> list[str]:
    """Every route template that answers GET: ordinary handlers and lean routes."""
    found = []
    for route in sb.app.routes:
        if isinstance(route, HTTPRoute):
            if "GET" in route.methods:
                found.append(route.path)
        elif (
            isinstance(route.route_handler, ASGIRouteHandler)
            and route.route_handler.opt.get("method") == "GET"
        ):
            found.append(route.path)
    return found


async def test_head_answers_every_get_route_as_get_does(sandbox: Sandbox) -> None:
    sb = sandbox
    customer, token, agent_id = await sb.customer_with_agent()
    call_id = await sb.place_call(token, agent_id, "+15005550002")
    await sb.wait_call(call_id)
    values = {
        "customer_id": customer,
        "call_id": call_id,
        "name": "head-inbox",
        "file_path": "favicon.svg",
        "message_id": "1",
    }
    # Some reads are asked for one account, as the dashboard asks for them.
    queries = {"/_sandbox/deliveries": f"?customerId={customer}"}
    auth = {**sb.admin, "Authorization": f"Bearer {token}"}
    routes = get_routes(sb)
    assert {"/v1/me", "/v1/cdrs", "/v1/agents", "/_sandbox/accounts", "/healthz"} <= set(routes)
    for template in routes:
        path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m[1], "x"), template)
        path += queries.get(template, "")
        headers = auth if path.startswith("/v1") else sb.admin
        if path.startswith("/_sandbox/stream/"):
            # An endless event stream: GET's headers without reading it (the harness's
            # client reads every body to check it, so another client; not a /v1 path).
            path += f"?token={sb.settings.admin_token}"
            async with (
                httpx.AsyncClient(base_url=sb.base_url) as plain,
                plain.stream("GET", path, headers=headers) as streamed,
            ):
                got = (streamed.status_code, _headers(streamed))
        else:
            r = await sb.client.get(path, headers=headers)
            got = (r.status_code, _headers(r))
        head = await sb.client.head(path, headers=headers)
        assert head.content == b"", template
        assert (head.status_code, _headers(head)) == got, template
    # Where the body does not change, HEAD announces exactly GET's length.
    for path in ("/v1/me", "/v1/agents", "/healthz", f"/_sandbox/accounts/{customer}"):
        get = await sb.client.get(path, headers=auth if path.startswith("/v1") else sb.admin)
        head = await sb.client.head(path, headers=auth if path.startswith("/v1") else sb.admin)
        assert head.headers["content-length"] == str(len(get.content)), path


async def test_head_on_the_stream_ends_and_leaves_the_connection_usable(
    sandbox: Sandbox,
) -> None:
    sb = sandbox
    path = f"/_sandbox/stream/{await sb.account()}?token={sb.settings.admin_token}"
    limits = httpx.Limits(max_connections=1)  # the next request reuses the connection
    async with httpx.AsyncClient(base_url=sb.base_url, limits=limits, timeout=10) as one:
        head = await one.head(path)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-type"].startswith("text/event-stream")
        assert (await one.get("/healthz")).status_code == 200


async def test_head_errors_are_gets_without_the_envelope(sandbox: Sandbox) -> None:
    for path in ("/v1/me", "/v1/balance", "/v1/cdrs?limit=0", "/v1/agents", "/v1/nothing"):
        get = await sandbox.client.get(path)
        head = await sandbox.client.head(path)
        assert get.status_code >= 400 and head.content == b""
        assert (head.status_code, _headers(head)) == (get.status_code, _headers(get)), path


async def test_allow_lists_head_wherever_it_lists_get(sandbox: Sandbox) -> None:
    answers: dict[str, Any] = {}
    for path in ("/v1/me", "/v1/agents", "/_sandbox/clock", "/healthz"):
        r = await sandbox.client.delete(path, headers=sandbox.admin)
        answers[path] = (r.status_code, r.headers["allow"])
    assert answers == {
        "/v1/me": (405, "GET, HEAD, OPTIONS"),
        "/v1/agents": (405, "GET, HEAD, OPTIONS"),
        "/_sandbox/clock": (405, "GET, HEAD, OPTIONS"),
        "/healthz": (405, "GET, HEAD, OPTIONS"),
    }
    r = await sandbox.client.delete("/v1/calls")
    assert r.headers["allow"] == "OPTIONS, POST"
