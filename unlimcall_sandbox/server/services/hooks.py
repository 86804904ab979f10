"""Webhook subscriptions: ``POST /v1/hooks`` and ``DELETE /v1/hooks/{id}`` (soft delete)."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import update

from unlimcall_sandbox.server.db.tables import hooks
from unlimcall_sandbox.server.errors import InvalidInput, NotFound
from unlimcall_sandbox.server.http import Tx
from unlimcall_sandbox.server.ids import derived_uuid, next_counter
from unlimcall_sandbox.server.services.events import EVENT_TYPES
from unlimcall_sandbox.server.structs import HookCreated

MAX_URL = 512


def check_target_url(url: Any, insecure_hosts: tuple[str, ...]) -> str:
    """``https://`` with a host, at most 512 chars; ``http://`` only for the insecure hosts."""
    if not isinstance(url, str) or not url:
        raise InvalidInput("target_url is required and must be a string.")
    if len(url) > MAX_URL:
        raise InvalidInput(f"target_url must be at most {MAX_URL} characters.")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise InvalidInput("target_url must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port
    except ValueError as exc:
        raise InvalidInput("target_url is not a valid URL.") from exc
    if not host:
        raise InvalidInput("target_url must have a host.")
    if "@" in parts.netloc:
        # Credentials in a URL end up in logs and in the delivery listing, and URL parsers
        # disagree about which side of an "@" is the host.
        raise InvalidInput("target_url must not contain user info (user:password@).")
    scheme = parts.scheme.lower()
    if scheme == "https":
        return url
    if scheme == "http" and host in insecure_hosts:
        return url
    allowed = f" (plain http only for: {', '.join(insecure_hosts)})" if insecure_hosts else ""
    raise InvalidInput(f"target_url must be https://{allowed}.")


async def create(tx: Tx, account_id: int, body: Any) -> HookCreated:
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object.")
    event = body.get("event")
    if not isinstance(event, str) or event not in EVENT_TYPES:
        raise InvalidInput(f"event must be one of {', '.join(EVENT_TYPES)}.")
    target_url = check_target_url(body.get("target_url"), tx.rt.settings.insecure_webhook_hosts)
    seq = await next_counter(tx.conn, "hook")
    hook_id = derived_uuid(tx.rt.settings.seed, "hook", seq)
    secret = "whsec_" + secrets.token_urlsafe(24)
    await tx.conn.execute(
        hooks.insert().values(
            id=hook_id,
            account_id=account_id,
            event=event,
            target_url=target_url,
            secret=secret,
            active=True,
            created_at=tx.rt.clock.now(),
        )
    )
    return HookCreated(id=hook_id, secret=secret)


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_uuid(raw: str) -> str:
    if not _UUID.match(raw):
        raise InvalidInput("id must be a UUID (8-4-4-4-12 hex digits).")
    return raw.lower()


async def disable(tx: Tx, account_id: int, raw_id: str) -> None:
    hook_id = parse_uuid(raw_id)
    result = await tx.conn.execute(
        update(hooks)
        .where(hooks.c.id == hook_id, hooks.c.account_id == account_id, hooks.c.active.is_(True))
        .values(active=False, disabled_at=tx.rt.clock.now())
    )
    if result.rowcount != 1:
        raise NotFound("No active hook with that id on this account.")
