"""Control-plane state reaches every process: a fault rule and a token revocation made
through the API process act in a separate worker process and a second API process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import api_only, worker_process
from tests.support.receiver import Receiver

pytestmark = pytest.mark.slow


async def test_a_webhook_rule_made_in_the_api_acts_in_another_worker_process(
    backend: str, tmp_path: Path
) -> None:
    receiver = await Receiver().start()
    try:
        async with api_only(backend, tmp_path) as sb:
            customer = await sb.account()
            token = await sb.token(customer)
            r = await sb.client.post(
                "/v1/hooks",
                headers=sb.bearer(token),
                json={"event": "call.ended", "target_url": f"{receiver.url}/twice"},
            )
            assert r.status_code == 200
            await sb.admin_post(
                "/faults", {"target": "webhook", "action": "duplicate", "customerId": customer}
            )
            with worker_process(sb, tmp_path / "worker.log"):
                await sb.admin_post("/events", {"customerId": customer, "event": "call.ended"})
                got = await receiver.wait_for("/twice", 2, timeout=30)
            assert got[0].headers["x-unlimcall-delivery"] == got[1].headers["x-unlimcall-delivery"]
    finally:
        await receiver.stop()
