"""What every client meets: envelopes for unknown routes and methods, the contract file,
health, request ids, body limits."""

from __future__ import annotations

import json
import logging

import pytest

from tests.support.contract import SPEC_PATH
from tests.support.sandbox import Sandbox
from unlimcall_sandbox.logs import fields


async def test_unknown_path_and_wrong_method_are_json_envelopes(sandbox: Sandbox) -> None:
    r = await sandbox.client.get("/v1/nothing-here")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    assert r.headers["content-type"].startswith("application/json")
    r = await sandbox.client.get("/totally/elsewhere")
    assert (r.status_code, r.json()["error"]) == (404, "not_found")
    r = await sandbox.client.put("/v1/me")
    assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
    assert "GET" in r.headers["allow"]
    r = await sandbox.client.delete("/v1/calls")
    assert r.status_code == 405


async def test_contract_file_is_served_verbatim(sandbox: Sandbox) -> None:
    # /v1/openapi.json is the contract pointed at this sandbox (tests/integration/test_docs.py);
    # the file itself, byte for byte, is here.
    r = await sandbox.client.get("/openapi/unlimcall-openapi.json")
    assert r.status_code == 200
    assert r.content == SPEC_PATH.read_bytes()
    assert r.headers["content-type"].startswith("application/json")


async def test_health_and_readiness(sandbox: Sandbox) -> None:
    assert (await sandbox.client.get("/healthz")).json() == {"status": "ok"}
    ready = await sandbox.client.get("/readyz")
    assert ready.json() == {"status": "ready", "database": "ok", "redis": "ok"}


async def test_request_id_is_echoed_or_made_and_logged(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    r = await sandbox.client.get("/healthz", headers={"X-Request-Id": "req-abc.123"})
    assert r.headers["x-request-id"] == "req-abc.123"
    r = await sandbox.client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"
    assert len(r.headers["x-request-id"]) == 32
    r = await sandbox.client.get("/v1/me")
    assert len(r.headers["x-request-id"]) == 32
    r = await sandbox.client.get("/no/such/route")
    assert (r.status_code, len(r.headers["x-request-id"])) == (404, 32)


async def test_access_log_line_carries_the_request_id(
    fresh: object, caplog: pytest.LogCaptureFixture
) -> None:
    async with fresh(log_requests=True) as sb:  # type: ignore[operator]
        with caplog.at_level(logging.INFO, logger="unlimcall.access"):
            r = await sb.client.get("/v1/agents", headers={"X-Request-Id": "trace-42"})
        lines = [fields(rec) for rec in caplog.records if rec.name == "unlimcall.access"]
        line = next(x for x in lines if x["request_id"] == "trace-42")
        assert r.headers["x-request-id"] == "trace-42"
        assert (line["status"], line["method"], line["path"]) == (401, "GET", "/v1/agents")
        assert line["route"] == "/v1/agents"
        assert line["duration_ms"] >= 0


async def test_oversized_body_is_400_on_v1_and_413_elsewhere(sandbox: Sandbox) -> None:
    """The contract lists 400 (no 413) for /v1's body-taking operations; the control plane
    and OAuth say 413. Both in the envelope, both naming the limit."""
    token = await sandbox.token("1042")
    big = json.dumps(
        {"aiAgentId": "27", "toNumber": "+14155551234", "metadata": {"x": "a" * 70000}}
    )
    message = f"Request body larger than {sandbox.settings.max_body_bytes} bytes."
    r = await sandbox.client.post(
        "/v1/calls",
        content=big,
        headers={**sandbox.bearer(token), "Content-Type": "application/json"},
    )
    assert (r.status_code, r.json()) == (400, {"error": "invalid_input", "message": message})
    for path in ("/_sandbox/accounts", "/oauth/token"):
        r = await sandbox.client.post(
            path, content=big, headers={**sandbox.admin, "Content-Type": "application/json"}
        )
        assert (r.status_code, r.json()) == (
            413,
            {"error": "payload_too_large", "message": message},
        )


async def test_metrics_in_prometheus_format(sandbox: Sandbox) -> None:
    _, token, agent_id = await sandbox.customer_with_agent()
    call_id = await sandbox.place_call(token, agent_id, "+15005550002")
    await sandbox.wait_call(call_id)
    await sandbox.client.get("/v1/me")
    r = await sandbox.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'unlimcall_http_requests_total{method="POST",route="/v1/calls",status="200"}' in text
    assert 'unlimcall_http_requests_total{method="GET",route="/v1/me",status="401"}' in text
    assert (
        'unlimcall_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/v1/me"}'
        in text
    )
    ended = [
        line for line in text.splitlines() if line.startswith('unlimcall_calls{state="ended"}')
    ]
    assert ended
    assert int(ended[0].split()[-1]) >= 1
    assert "unlimcall_queue_depth " in text
    for line in text.splitlines():
        if not line.startswith("#"):
            _, value = line.rsplit(" ", 1)
            float(value)
