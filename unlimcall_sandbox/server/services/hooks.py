"""Webhook subscriptions: ``POST /v1/hooks`` and ``DELETE /v1/hooks/{id}`` (soft delete)."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update

from unlimcall_sandbox.server.db.tables import accounts, hooks
from unlimcall_sandbox.server.db.unit import UnitOfWork
from unlimcall_sandbox.server.errors import InvalidInput, NotFound
from unlimcall_sandbox.server.ids import derived_uuid, next_id
from unlimcall_sandbox.server.services.deps import Deps
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


async def create(tx: UnitOfWork, deps: Deps, account_id: int, body: Any) -> HookCreated:
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object.")
    event = body.get("event")
    if not isinstance(event, str) or event not in EVENT_TYPES:
        raise InvalidInput(f"event must be one of {', '.join(EVENT_TYPES)}.")
    target_url = check_target_url(body.get("target_url"), deps.insecure_webhook_hosts)
    await _check_hook_cap(tx, deps, account_id)
    seq = await next_id(tx.conn, "hook")
    hook_id = derived_uuid(deps.seed, "hook", seq)
    secret = "whsec_" + secrets.token_urlsafe(24)
    await tx.conn.execute(
        hooks.insert().values(
            id=hook_id,
            account_id=account_id,
            event=event,
            target_url=target_url,
            secret=secret,
            active=True,
            created_at=deps.clock.now(),
        )
    )
    return HookCreated(id=hook_id, secret=secret)


async def _check_hook_cap(tx: UnitOfWork, deps: Deps, account_id: int) -> None:
    """At most ``deps.hooks_per_account`` active hooks. The account row is locked first
    (a no-op UPDATE), so two creations racing for the last place cannot both get it."""
    await tx.conn.execute(
        update(accounts).where(accounts.c.id == account_id).values(status=accounts.c.status)
    )
    active = (
        await tx.conn.execute(
            select(func.count())
            .select_from(hooks)
            .where(hooks.c.account_id == account_id, hooks.c.active.is_(True))
        )
    ).scalar_one()
    if active >= deps.hooks_per_account:
        raise InvalidInput(
            f"This account already has {active} active hooks, the most it may have"
            f" ({deps.hooks_per_account}); delete one (DELETE /v1/hooks/{{id}}) first."
        )


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_uuid(raw: str) -> str:
    if not _UUID.match(raw):
        raise InvalidInput("id must be a UUID (8-4-4-4-12 hex digits).")
    return raw.lower()


async def disable(tx: UnitOfWork, deps: Deps, account_id: int, raw_id: str) -> None:
    hook_id = parse_uuid(raw_id)
    result = await tx.conn.execute(
        update(hooks)
        .where(hooks.c.id == hook_id, hooks.c.account_id == account_id, hooks.c.active.is_(True))
        .values(active=False, disabled_at=deps.clock.now())
    )
    if result.rowcount != 1:
        raise NotFound("No active hook with that id on this account.")
