"""Logs (issue 17, item 6): ``serve`` with its stderr going to a file (not a terminal)
writes every log line as one JSON object with ``ts``, ``level``, ``logger`` and ``msg``,
requests and delivery attempts with their fields; the banner stays text, on stdout."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.sandbox import ADMIN, Sandbox, make_settings
from unlimcall_sandbox.logs import JsonFormatter, TextFormatter, configure_logging, fields
from unlimcall_sandbox.testing.launch import free_port, sandbox_command

pytestmark = pytest.mark.timeout(120)


def _serve(env: dict[str, str], out: Path, err: Path) -> subprocess.Popen[bytes]:
    """``serve``: stdout and stderr to files of their own (neither is a terminal)."""
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [*sandbox_command(), "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )


def _text(path: Path) -> str:
    return path.read_text()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], err: Path) -> None:
    for _ in range(600):
        assert proc.poll() is None, _text(err)
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"serve never got ready:\n{_text(err)}")


async def test_every_stderr_line_of_serve_is_a_json_object(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLIMCALL_")}
    env.update(
        UNLIMCALL_DATA_DIR=str(tmp_path / "data"),
        UNLIMCALL_HOST="127.0.0.1",
        UNLIMCALL_PORT=str(port),
        UNLIMCALL_ADMIN_TOKEN=ADMIN,
        UNLIMCALL_LOG_REQUESTS="true",
        UNLIMCALL_WEBHOOK_EGRESS="loopback",
        UNLIMCALL_WEBHOOK_ALLOW="",
    )
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    proc = _serve(env, out, err)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as client:
            await _ready(client, proc, err)
            sb = Sandbox(client, Any, make_settings(tmp_path, None, None))  # HTTP helpers only
            missing = await client.get("/no/such/route", headers={"X-Request-Id": "log-404"})
            assert missing.status_code == 404
            customer = await sb.account()
            token = await sb.token(customer)
            r = await client.post(
                "/v1/hooks",
                headers=sb.bearer(token),
                json={"event": "call.ended", "target_url": f"{base}/_sandbox/inbox/logs"},
            )
            assert r.status_code in (200, 201), r.text
            hook_id = r.json()["id"]
            await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})
            [delivery] = await sb.wait_deliveries(
                lambda items: items and items[0]["status"] == "delivered", hookId=hook_id
            )
    finally:
        _stop(proc)
    # (uvicorn ends by re-raising the SIGTERM it handled)
    assert proc.returncode in (0, -15), _text(err)

    assert _text(out).startswith("UnlimCall Sandbox "), "the banner: text, on stdout"
    lines = [line for line in _text(err).splitlines() if line.strip()]
    assert lines
    parsed = []
    for line in lines:
        item = json.loads(line)  # every line, not only those that look like JSON
        assert isinstance(item, dict), line
        assert {"ts", "level", "logger", "msg"} <= item.keys(), line
        stamp = datetime.fromisoformat(item["ts"])
        assert item["ts"].endswith("Z") and stamp.utcoffset() == UTC.utcoffset(None), line
        parsed.append(item)
    [not_found] = [x for x in parsed if x.get("request_id") == "log-404"]
    assert not_found["logger"] == "unlimcall.access"
    assert (not_found["method"], not_found["path"], not_found["status"]) == (
        "GET",
        "/no/such/route",
        404,
    )
    assert not_found["duration_ms"] >= 0
    attempts = [x for x in parsed if x["msg"] == "delivery_attempt"]
    assert [(x["delivery_id"], x["hook_id"], x["attempt"], x["outcome"]) for x in attempts] == [
        (delivery["id"], hook_id, 1, "delivered")
    ]


def _record(**extra: Any) -> Any:
    import logging

    record = logging.LogRecord("unlimcall.test", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    record.__dict__.update(extra)
    return record


def test_the_formats_carry_the_fields() -> None:
    record = _record(request_id="r1", status=404, path="/x y")
    line = json.loads(JsonFormatter().format(record))
    assert {k: line[k] for k in ("level", "logger", "msg", "request_id", "status")} == {
        "level": "warning",
        "logger": "unlimcall.test",
        "msg": "a b",
        "request_id": "r1",
        "status": 404,
    }
    assert fields(record) == {"request_id": "r1", "status": 404, "path": "/x y"}
    text = TextFormatter().format(record)
    assert text.endswith('WARNING unlimcall.test a b request_id=r1 status=404 path="/x y"')


def test_configure_logging_leaves_someone_elses_root_handlers_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    root = logging.getLogger()
    before = list(root.handlers)  # pytest's
    configure_logging("json")
    assert root.handlers == before
    with pytest.raises(ValueError, match="expected one of"):
        configure_logging("yaml")
