"""Item 4 of issue 15: anyone may post anything to an inbox, and nothing they post breaks
it or grows the database without bound; old history is swept (CDRs stay)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.db.tables import (
    calls,
    cdrs,
    deliveries,
    events,
    inbox_messages,
)
from unlimcall_sandbox.server.services import retention
from unlimcall_sandbox.server.services.inbox import InboxCaps
from unlimcall_sandbox.workers.jobs import retain

pytestmark = pytest.mark.slow

POISON = b"[" * 1000 + b"]" * 1000


async def test_a_poisoned_inbox_still_answers_with_the_message_flagged(fresh: Any) -> None:
    async with fresh(worker=False) as sb:
        r = await sb.client.post("/_sandbox/inbox/poison", content=POISON)
        assert r.status_code == 200
        r = await sb.client.post("/_sandbox/inbox/poison", json={"fine": True})
        assert r.status_code == 200
        r = await sb.client.get("/_sandbox/inbox/poison", headers=sb.admin)
        assert r.status_code == 200, r.text
        poisoned, fine = r.json()["messages"]
        assert "raw" in poisoned["flags"] and poisoned["body"] == POISON.decode()
        assert fine["flags"] == [] and fine["body"] == {"fine": True}
        # The dashboard's views of it too.
        r = await sb.client.get("/_sandbox/dashboard/inboxes/poison", headers=sb.admin)
        assert r.status_code == 200, r.text


async def stored(sb: Sandbox) -> tuple[int, int, int]:
    """Inboxes, most messages in one, and characters of body and headers stored."""
    async with sb.rt.db.read() as conn:
        per_inbox = (
            await conn.execute(
                select(func.count()).select_from(inbox_messages).group_by(inbox_messages.c.inbox)
            )
        ).all()
        size = (
            await conn.execute(
                select(
                    func.coalesce(
                        func.sum(
                            func.length(inbox_messages.c.body)
                            + func.length(inbox_messages.c.headers)
                        ),
                        0,
                    )
                )
            )
        ).scalar_one()
    return len(per_inbox), max((n for (n,) in per_inbox), default=0), int(size)


async def test_a_flood_of_posts_leaves_the_inboxes_within_their_bound(fresh: Any) -> None:
    caps = InboxCaps(message_bytes=4096, messages=5, inboxes=10)
    async with fresh(
        worker=False,
        inbox_message_bytes=caps.message_bytes,
        inbox_max_messages=caps.messages,
        inbox_max_inboxes=caps.inboxes,
    ) as sb:
        big = b'{"x": "' + b"a" * 60_000 + b'"}'
        answers = await sb.concurrently(
            [sb.client.post(f"/_sandbox/inbox/flood-{i % 60}", content=big) for i in range(400)],
            width=16,
        )
        for _ in range(caps.messages + 3):
            r = await sb.client.post("/_sandbox/inbox/flood-last", content=big)
            assert r.status_code == 200
        assert {a.status_code for a in answers} == {200}
        inboxes, most, size = await stored(sb)
        assert inboxes <= caps.inboxes and most <= caps.messages
        assert size <= caps.stored_bound
        # The newest inbox keeps its newest messages, readable, flagged as cut.
        r = await sb.client.get("/_sandbox/inbox/flood-last", headers=sb.admin)
        assert r.status_code == 200
        messages = r.json()["messages"]
        assert len(messages) == caps.messages
        assert all({"truncated", "raw"} <= set(m["flags"]) for m in messages)


async def test_retention_sweeps_old_history_and_keeps_cdrs(fresh: Any) -> None:
    async with fresh() as sb:
        customer, token, agent = await sb.customer_with_agent()
        target = f"{sb.base_url}/_sandbox/inbox/kept-{customer}"
        r = await sb.client.post(
            "/v1/hooks",
            headers=sb.bearer(token),
            json={"event": "call.ended", "target_url": target},
        )
        assert r.status_code == 200
        call_id = await sb.place_call(token, agent, "+15005550006")
        await sb.wait_call(call_id)
        await sb.wait_deliveries(
            lambda items: items and items[0]["status"] == "delivered", hookId=r.json()["id"]
        )
        assert await retain(sb.rt) == {}  # nothing is a week old yet

        async def count(table: Any) -> int:
            async with sb.rt.db.read() as conn:
                return int(
                    (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                )

        cdrs_before = await count(cdrs)
        assert cdrs_before and await count(calls) and await count(inbox_messages)
        later = sb.rt.clock.now() + sb.settings.retention_age + 1
        deleted = await retention.sweep(
            lambda: sb.rt.db.write(), later, sb.settings.retention_age, InboxCaps()
        )
        assert deleted["inbox_messages"] and deleted["calls"] and deleted["deliveries"]
        assert deleted["events"] and deleted["delivery_attempts"]
        for table in (calls, deliveries, events, inbox_messages):
            assert await count(table) == 0, table.name
        assert await count(cdrs) == cdrs_before
