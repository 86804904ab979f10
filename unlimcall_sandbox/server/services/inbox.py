"""The webhook inbox: a receiver built into the sandbox. Hooks may point at
``/_sandbox/inbox/{name}``; each arrival is stored with its headers and body, and its
signature is checked against the secret of the hook that sent it (found through
``X-Unlimcall-Delivery``). Stored in the database, so every process sees every inbox."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import deliveries, hooks, inbox_messages, inboxes
from unlimcall_sandbox.server.errors import InvalidInput
from unlimcall_sandbox.server.ids import next_counter
from unlimcall_sandbox.server.signing import SIGNATURE_HEADER, verify_signature
from unlimcall_sandbox.server.structs import InboxMessage, InboxView

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
VERIFIED, INVALID, UNSIGNED, UNKNOWN = "verified", "invalid", "unsigned", "unknown_hook"

RAW, TRUNCATED, HEADERS_TRUNCATED = "raw", "truncated", "headers_truncated"
"""Flags of a stored message: its body is not JSON (or nested too deeply to parse: kept and
shown as text), was cut at the per-message cap, or its headers were."""
HEADER_VALUE_CAP = 1024
"""Characters kept of one header value."""
HEADERS_CAP = 4096
"""Characters of stored headers (as JSON) per message; later headers are left out."""


@dataclass(frozen=True)
class InboxCaps:
    """What one inbox post may store: ``message_bytes`` of body, ``messages`` per inbox
    (the oldest dropped), ``inboxes`` with messages (the least recently posted-to dropped)."""

    message_bytes: int = 8192
    messages: int = 100
    inboxes: int = 50

    @property
    def stored_bound(self) -> int:
        """The most body and header characters all inboxes together can hold."""
        return self.inboxes * self.messages * (self.message_bytes + HEADERS_CAP)


# Deeper JSON is kept raw: how deep json.loads itself can go depends on the Python version
# (3.11 raises RecursionError near 1,000 levels; 3.12 parses it), and no webhook nests so.
MAX_DEPTH = 64


def _too_deep(text: str) -> bool:
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_body(text: str) -> tuple[Any, bool]:
    """A stored body as JSON and True, or the text itself and False when it is not JSON or
    nested deeper than MAX_DEPTH (never an error: anyone may post anything)."""
    if _too_deep(text):
        return text, False
    try:
        return json.loads(text), True
    except (ValueError, RecursionError):
        return text, False


def _stored_body(body: bytes, cap: int) -> tuple[str, list[str]]:
    flags = []
    if len(body) > cap:
        body, flags = body[:cap], [TRUNCATED]
    text = body.decode("utf-8", "replace")
    if not parse_body(text)[1]:
        flags.append(RAW)
    return text, flags


def _stored_headers(headers: dict[str, str]) -> tuple[str, list[str]]:
    kept: dict[str, str] = {}
    size, cut = 2, False
    for key, value in headers.items():
        if len(value) > HEADER_VALUE_CAP:
            value, cut = value[:HEADER_VALUE_CAP], True
        size += len(key) + len(value) + 6
        if size > HEADERS_CAP:
            cut = True
            break
        kept[key] = value
    return json.dumps(kept, ensure_ascii=False), [HEADERS_TRUNCATED] if cut else []


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput("Inbox names are 1..64 letters, digits, '.', '_' or '-'.")
    return name


async def answer_status(conn: Conn, name: str) -> int:
    status = (
        await conn.execute(select(inboxes.c.status).where(inboxes.c.name == name))
    ).scalar_one_or_none()
    return 200 if status is None else int(status)


async def set_status(conn: Conn, name: str, status: int, now: float) -> None:
    if not 200 <= status <= 599:
        raise InvalidInput("status must be an HTTP status between 200 and 599.")
    await conn.execute(delete(inboxes).where(inboxes.c.name == name))
    await conn.execute(inboxes.insert().values(name=name, status=status, created_at=now))


async def _signature_state(conn: Conn, headers: dict[str, str], body: bytes) -> str:
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
    conn: Conn,
    name: str,
    method: str,
    headers: dict[str, str],
    body: bytes,
    now: float,
    caps: InboxCaps | None = None,
) -> tuple[int, str]:
    """Store one arrival within ``caps``; returns the status to answer with and the
    signature state (checked against the whole body, before any truncation)."""
    caps = caps or InboxCaps()
    status = await answer_status(conn, name)
    state = await _signature_state(conn, headers, body)
    # The lock that serializes inbox posts (a counter row, until commit), so the caps
    # below hold under concurrent posts on PostgreSQL; its value is not used.
    await next_counter(conn, "inbox")
    is_new = (
        await conn.execute(
            select(inbox_messages.c.id).where(inbox_messages.c.inbox == name).limit(1)
        )
    ).first() is None
    text, flags = _stored_body(body, caps.message_bytes)
    stored_headers, header_flags = _stored_headers(headers)
    await conn.execute(
        inbox_messages.insert().values(
            inbox=name,
            received_at=now,
            method=method,
            headers=stored_headers,
            body=text,
            delivery_id=headers.get("x-unlimcall-delivery", "")[:64] or None,
            signature=state,
            answered=status,
            flags=",".join(flags + header_flags),
        )
    )
    await _trim_inbox(conn, name, caps.messages)
    if is_new:
        await _trim_inboxes(conn, caps.inboxes)
    return status, state


async def _trim_inbox(conn: Conn, name: str, keep: int) -> None:
    """Drop the oldest messages of ``name`` beyond the newest ``keep``."""
    edge = (
        await conn.execute(
            select(inbox_messages.c.id)
            .where(inbox_messages.c.inbox == name)
            .order_by(inbox_messages.c.id.desc())
            .offset(max(keep, 1))
            .limit(1)
        )
    ).first()
    if edge is not None:
        await conn.execute(
            delete(inbox_messages).where(
                inbox_messages.c.inbox == name, inbox_messages.c.id <= edge[0]
            )
        )


async def _trim_inboxes(conn: Conn, keep: int) -> None:
    """Drop every message of the inboxes beyond the ``keep`` most recently posted to."""
    latest = func.max(inbox_messages.c.id)
    stale = (
        await conn.execute(
            select(inbox_messages.c.inbox)
            .group_by(inbox_messages.c.inbox)
            .order_by(latest.desc())
            .offset(max(keep, 1))
        )
    ).all()
    names = [r[0] for r in stale]
    for start in range(0, len(names), 500):
        await conn.execute(
            delete(inbox_messages).where(inbox_messages.c.inbox.in_(names[start : start + 500]))
        )


async def enforce_caps(conn: Conn, caps: InboxCaps) -> None:
    """Trim every inbox to the caps (the sweep's backstop; posts trim as they store)."""
    await _trim_inboxes(conn, caps.inboxes)
    counts = (
        await conn.execute(
            select(inbox_messages.c.inbox)
            .group_by(inbox_messages.c.inbox)
            .having(func.count() > caps.messages)
        )
    ).all()
    for (name,) in counts:
        await _trim_inbox(conn, name, caps.messages)


async def listing(conn: Conn, name: str, limit: int) -> InboxView:
    rows = (
        await conn.execute(
            select(inbox_messages)
            .where(inbox_messages.c.inbox == name)
            .order_by(inbox_messages.c.id)
            .limit(limit)
        )
    ).all()

    def message(r: Any) -> InboxMessage:
        headers: dict[str, str] = json.loads(r.headers)
        flags = [f for f in (r.flags or "").split(",") if f]
        body = r.body if RAW in flags else parse_body(r.body)[0]
        return InboxMessage(
            receivedAt=iso(r.received_at),
            method=r.method,
            headers=headers,
            body=body,
            flags=flags,
            rawBody=r.body,
            deliveryId=r.delivery_id,
            event=headers.get("x-unlimcall-event"),
            signature=r.signature,
            signatureVerified=r.signature == VERIFIED,
            answered=r.answered,
        )

    messages = [message(r) for r in rows]
    return InboxView(
        inbox=name,
        status=await answer_status(conn, name),
        count=len(messages),
        messages=messages,
    )


async def clear(conn: Conn, name: str) -> None:
    await conn.execute(delete(inbox_messages).where(inbox_messages.c.inbox == name))
    await conn.execute(delete(inboxes).where(inboxes.c.name == name))
