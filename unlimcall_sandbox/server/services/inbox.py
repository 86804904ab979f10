"""The webhook inbox: a receiver built into the sandbox. Hooks may point at
``/_sandbox/inbox/{name}``; each arrival is stored with its headers and body, and its
signature is checked against the secret of the hook that sent it (found through
``X-Unlimcall-Delivery``). Stored in the database, so every process sees every inbox."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.tables import deliveries, hooks, inbox_messages, inboxes
from unlimcall_sandbox.server.errors import InvalidInput
from unlimcall_sandbox.server.ids import next_counter
from unlimcall_sandbox.server.signing import SIGNATURE_HEADER, verify_signature

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
VERIFIED, INVALID, UNSIGNED, UNKNOWN = "verified", "invalid", "unsigned", "unknown_hook"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput("Inbox names are 1..64 letters, digits, '.', '_' or '-'.")
    return name


async def answer_status(conn: AsyncConnection, name: str) -> int:
    status = (
        await conn.execute(select(inboxes.c.status).where(inboxes.c.name == name))
    ).scalar_one_or_none()
    return 200 if status is None else int(status)


async def set_status(conn: AsyncConnection, name: str, status: int, now: float) -> None:
    if not 200 <= status <= 599:
        raise InvalidInput("status must be an HTTP status between 200 and 599.")
    await conn.execute(delete(inboxes).where(inboxes.c.name == name))
    await conn.execute(inboxes.insert().values(name=name, status=status, created_at=now))


async def _signature_state(conn: AsyncConnection, headers: dict[str, str], body: bytes) -> str:
    header = headers.get(SIGNATURE_HEADER.lower())
    if not header:
        return UNSIGNED
    delivery_id = headers.get("x-unlimcall-delivery", "")
    secret = (
        await conn.execute(
            select(hooks.c.secret)
            .join(deliveries, deliveries.c.hook_id == hooks.c.id)
            .where(deliveries.c.id == delivery_id[:64])
        )
    ).scalar_one_or_none()
    if secret is None:
        return UNKNOWN
    return VERIFIED if verify_signature(secret, header, body) else INVALID


async def record(
    conn: AsyncConnection, name: str, method: str, headers: dict[str, str], body: bytes, now: float
) -> tuple[int, str]:
    """Store one arrival; returns the status to answer with and the signature state."""
    status = await answer_status(conn, name)
    state = await _signature_state(conn, headers, body)
    await next_counter(conn, "inbox")  # keeps ids dense per sandbox for readability
    await conn.execute(
        inbox_messages.insert().values(
            inbox=name,
            received_at=now,
            method=method,
            headers=json.dumps(headers, ensure_ascii=False),
            body=body.decode("utf-8", "replace"),
            delivery_id=headers.get("x-unlimcall-delivery", "")[:64] or None,
            signature=state,
            answered=status,
        )
    )
    return status, state


async def listing(conn: AsyncConnection, name: str, limit: int) -> dict[str, Any]:
    rows = (
        await conn.execute(
            select(inbox_messages)
            .where(inbox_messages.c.inbox == name)
            .order_by(inbox_messages.c.id)
            .limit(limit)
        )
    ).all()

    def body_of(text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            return text

    return {
        "inbox": name,
        "status": await answer_status(conn, name),
        "count": len(rows),
        "messages": [
            {
                "receivedAt": iso(r.received_at),
                "method": r.method,
                "headers": json.loads(r.headers),
                "body": body_of(r.body),
                "rawBody": r.body,
                "deliveryId": r.delivery_id,
                "event": json.loads(r.headers).get("x-unlimcall-event"),
                "signature": r.signature,
                "signatureVerified": r.signature == VERIFIED,
                "answered": r.answered,
            }
            for r in rows
        ],
    }


async def clear(conn: AsyncConnection, name: str) -> None:
    await conn.execute(delete(inbox_messages).where(inbox_messages.c.inbox == name))
    await conn.execute(delete(inboxes).where(inboxes.c.name == name))
