"""`unlimcall-sandbox listen --forward-to`: deliveries printed and forwarded, signed."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.support.receiver import Receiver
from tests.support.sandbox import ADMIN, Sandbox
from unlimcall_sandbox import verify_signature

CLI = Path(sys.executable).parent / "unlimcall-sandbox"


async def test_listen_forwards_signed_deliveries(sandbox: Sandbox, receiver: Receiver) -> None:
    customer = await sandbox.account()
    proc = await asyncio.create_subprocess_exec(
        str(CLI),
        "listen",
        "--url",
        sandbox.base_url,
        "--admin-token",
        ADMIN,
        "--customer",
        customer,
        "--events",
        "call.ended,dnc.added",
        "--forward-to",
        f"{receiver.url}/local/hooks",
        "--max-events",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    secrets: dict[str, str] = {}
    while len(secrets) < 2:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line, "listen exited early"
        if m := re.match(r"Ready! (\S+) deliveries are signed with (whsec_\S+)", line):
            secrets[m.group(1)] = m.group(2)
    await asyncio.sleep(0.3)
    await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    await sandbox.admin_post("/events", {"customerId": customer, "event": "dnc.added"})
    got = await receiver.wait_for("/local/hooks", 2)
    rest = (await asyncio.wait_for(proc.stdout.read(), 30)).decode()
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    for g in got:
        event = g.headers["x-unlimcall-event"]
        assert verify_signature(secrets[event], g.headers["x-unlimcall-signature"], g.body)
        assert g.json()["event"] == event
    assert "--> call.ended" in rest
    assert "<--  [200] POST" in rest
    assert "hooks removed" in rest
    # Its hooks are gone: a new event has no delivery for them.
    await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    await asyncio.sleep(0.3)
    pending = [
        d for d in await sandbox.deliveries(customerId=customer) if d["status"] != "delivered"
    ]
    assert pending == []
