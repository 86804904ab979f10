"""`unlimcall-sandbox listen --forward-to`: one session secret, printed once; deliveries
checked against the sandbox's signature, re-signed with the session secret and forwarded;
on exit its hooks are removed and its token revoked; no sandbox, one line."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.receiver import Receiver, free_port
from tests.support.sandbox import ADMIN, Sandbox
from unlimcall_sandbox import verify_signature
from unlimcall_sandbox.cli.listen import listen, prepare
from unlimcall_sandbox.server.services import tokens as token_service
from unlimcall_sandbox.server.signing import sign
from unlimcall_sandbox.server.structs import TokenCreated

CLI = Path(sys.executable).parent / "unlimcall-sandbox"
READY = re.compile(r"Ready! Your webhook signing secret is (whsec_\S+)")


def _minted(monkeypatch: pytest.MonkeyPatch) -> list[TokenCreated]:
    """Every portal token the sandbox mints from now on (the CLI's included)."""
    minted: list[TokenCreated] = []
    original = token_service.mint_portal_token

    async def spy(*args: Any, **kwargs: Any) -> TokenCreated:
        created = await original(*args, **kwargs)
        minted.append(created)
        return created

    monkeypatch.setattr(token_service, "mint_portal_token", spy)
    return minted


async def _listen(
    sandbox: Sandbox, customer: str, events: str, forward_to: str, *extra: str
) -> Any:
    return await asyncio.create_subprocess_exec(
        str(CLI),
        "listen",
        "--url",
        sandbox.base_url,
        "--admin-token",
        ADMIN,
        "--customer",
        customer,
        "--events",
        events,
        "--forward-to",
        forward_to,
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _ready(proc: Any) -> tuple[str, str]:
    """Lines up to the Ready line (hooks are subscribed by then); the session secret."""
    seen = ""
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line, f"listen exited early: {seen}"
        seen += line
        if m := READY.search(line):
            return m.group(1), seen


async def _overview(sandbox: Sandbox, customer: str) -> dict[str, Any]:
    r = await sandbox.client.get(f"/_sandbox/accounts/{customer}/overview", headers=sandbox.admin)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def _assert_cleaned_up(
    sandbox: Sandbox, customer: str, minted: list[TokenCreated], hooks: int
) -> set[str]:
    """Its hooks are disabled (a new event makes no delivery), its tokens revoked (401);
    the ids of its hooks."""
    overview = await _overview(sandbox, customer)
    own = [h for h in overview["hooks"] if "/_sandbox/inbox/listen-" in h["targetUrl"]]
    assert len(own) == hooks
    assert not any(h["active"] for h in own)
    fired = await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    assert fired["deliveries"] == 0
    assert minted, "listen minted no token"
    assert all(t["revoked"] for t in overview["tokens"])
    for token in minted:
        r = await sandbox.client.get("/v1/me", headers=sandbox.bearer(token.token))
        assert r.status_code == 401
    return {h["id"] for h in own}


async def test_listen_forwards_deliveries_signed_with_one_session_secret(
    sandbox: Sandbox, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = await sandbox.account()
    minted = _minted(monkeypatch)
    proc = await _listen(
        sandbox,
        customer,
        "call.ended,dnc.added",
        f"{receiver.url}/local/hooks",
        "--max-events",
        "2",
    )
    secret, head = await _ready(proc)
    await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    await sandbox.admin_post("/events", {"customerId": customer, "event": "dnc.added"})
    got = await receiver.wait_for("/local/hooks", 2)
    rest = (await asyncio.wait_for(proc.stdout.read(), 30)).decode()
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    output = head + rest
    assert re.findall(r"whsec_\S+", output) == [secret], output
    hook_ids = await _assert_cleaned_up(sandbox, customer, minted, hooks=2)
    assert sorted(g.headers["x-unlimcall-event"] for g in got) == ["call.ended", "dnc.added"]
    for g in got:
        assert verify_signature(secret, g.headers["x-unlimcall-signature"], g.body)
        assert g.json()["event"] == g.headers["x-unlimcall-event"]
        assert g.headers["x-unlimcall-delivery"]
        assert g.headers["x-unlimcall-hook-id"] in hook_ids
    assert "--> call.ended" in output
    assert "<--  [200] POST" in output
    assert "removed its 2 hooks and revoked its token" in output


async def test_listen_passes_signature_faults_through_and_stops_on_ctrl_c(
    sandbox: Sandbox, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad sandbox signature is reported and forwarded unverifiable; an expired one is
    re-signed at its own (old) timestamp; Ctrl-C cleans up."""
    customer = await sandbox.account()
    minted = _minted(monkeypatch)
    proc = await _listen(sandbox, customer, "call.ended", f"{receiver.url}/in")
    secret, _ = await _ready(proc)
    rules: list[str] = []
    try:
        for n, action in enumerate(("bad_signature", "expired_signature", None), start=1):
            if action is not None:
                rule = {"target": "webhook", "action": action, "customerId": customer, "count": 1}
                rules.append((await sandbox.admin_post("/faults", rule))["id"])
            await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
            await receiver.wait_for("/in", n)
    finally:
        for rule_id in rules:
            await sandbox.client.delete(f"/_sandbox/faults/{rule_id}", headers=sandbox.admin)
    proc.send_signal(signal.SIGINT)
    output = (await asyncio.wait_for(proc.stdout.read(), 30)).decode()
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    bad, expired, good = receiver.for_path("/in")

    def valid(g: Any, tolerance: int = 300) -> bool:
        return verify_signature(secret, g.headers["x-unlimcall-signature"], g.body, tolerance)

    assert not valid(bad) and not valid(bad, tolerance=0)
    assert not valid(expired) and valid(expired, tolerance=0)
    assert valid(good)
    assert output.count("sandbox signature rejected") == 1
    assert output.count("s ago: forwarded with that age") == 1
    assert "removed its 1 hook and revoked its token" in output
    await _assert_cleaned_up(sandbox, customer, minted, hooks=1)


async def test_listen_without_a_sandbox_says_so_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        "listen",
        "--url",
        url,
        "--admin-token",
        ADMIN,
        "--forward-to",
        "http://127.0.0.1:9/hooks",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert out == b""
    [line] = err.decode().splitlines()  # one line, no traceback
    assert url in line and "refused" in line.lower() and "'unlimcall-sandbox serve'" in line


def test_listen_called_without_a_sandbox_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert listen(url, ADMIN, "1042", ["call.ended"], "http://127.0.0.1:9/hooks") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"listen: no sandbox at {url}: connection refused — "
        "start one with 'unlimcall-sandbox serve'"
    ]


def _message(secret: str, body: str, **headers: str) -> dict[str, Any]:
    signed = {
        "content-type": "application/json",
        "x-unlimcall-event": "call.ended",
        "x-unlimcall-delivery": "d-1",
        "x-unlimcall-signature": sign(secret, body.encode(), 1_700_000_000),
        "x-unlimcall-request-id": "not forwarded",
        **headers,
    }
    return {"headers": signed, "rawBody": body}


def test_prepare_re_signs_with_the_session_secret_at_the_sandbox_timestamp() -> None:
    body = '{"event":"call.ended","note":"caf\u00e9 ☎"}'
    hook, session = "whsec_hook", "whsec_session"
    for extra in ({"x-unlimcall-hook-id": "h1"}, {}):  # by hook id; by event without it
        out = prepare(_message(hook, body, **extra), {"h1": hook}, {"call.ended": hook}, session)
        assert out.problem is None
        assert out.headers["x-unlimcall-signature"].startswith("t=1700000000,")
        assert verify_signature(session, out.headers["x-unlimcall-signature"], body, 0)
        assert "x-unlimcall-request-id" not in out.headers
        assert out.headers.get("x-unlimcall-hook-id") == extra.get("x-unlimcall-hook-id")


def test_prepare_forwards_what_does_not_verify_as_received() -> None:
    body, session = '{"event":"call.ended"}', "whsec_session"
    cases = [
        (_message("whsec_other", body, **{"x-unlimcall-hook-id": "h1"}), "does not verify"),
        (_message("whsec_hook", body, **{"x-unlimcall-hook-id": "h2"}), "not from one"),
        (_message("whsec_hook", body, **{"x-unlimcall-event": "dnc.added"}), "not from one"),
        (_message("whsec_hook", body, **{"x-unlimcall-signature": ""}), "unsigned"),
    ]
    for message, problem in cases:
        out = prepare(message, {"h1": "whsec_hook"}, {"call.ended": "whsec_hook"}, session)
        assert out.problem is not None and problem in out.problem
        assert (
            out.headers.get("x-unlimcall-signature") == message["headers"]["x-unlimcall-signature"]
        )
