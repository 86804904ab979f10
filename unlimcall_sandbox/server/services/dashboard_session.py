"""Signing in to the dashboard without handling the admin token: a one-time code, carried by
the link ``serve`` prints (or ``unlimcall-sandbox dashboard-link`` asks for), is exchanged
once at ``GET /dashboard/login?code=…`` for a session kept in an HttpOnly, SameSite=Strict
cookie. Codes and sessions live in the database (``dashboard_sessions``, digests only), so
any API process redeems a code another process made, and they are tied to the admin token
that was current when they were made: a new admin token ends every session.

The control plane accepts the cookie as it accepts the admin bearer (``admitted``, called by
the admin guard). A request that changes state and is authenticated by the cookie must come
from the dashboard's own origin (``Sec-Fetch-Site``/``Origin``) and carry the dashboard's
header (``X-Unlimcall-Dashboard``), which no other site can make a browser send with the
cookie: cross-site requests lose the cookie (SameSite=Strict), and a page on another port of
this host (same site, other origin) fails the origin check.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update

from unlimcall_sandbox.server.db.engine import write
from unlimcall_sandbox.server.db.port import Conn, Database
from unlimcall_sandbox.server.db.tables import dashboard_sessions
from unlimcall_sandbox.server.errors import ApiError
from unlimcall_sandbox.server.settings import Settings

COOKIE = "unlimcall_dashboard"
HEADER = "x-unlimcall-dashboard"
CODE_TTL = 15 * 60.0
"""A sign-in link works once, within 15 minutes of being made."""
SESSION_TTL = 12 * 3600.0
"""A session lasts 12 hours (and the cookie no longer than the browser session)."""
LOGIN_PATH = "/dashboard/login"
CODE, SESSION = "code", "session"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CODE_PREFIX, _SESSION_PREFIX = "dlc_", "dls_"
_FORGET_AFTER = 86400.0


class CrossOrigin(ApiError):
    code = "forbidden"
    status = 403
    default_message = (
        "The dashboard session cookie is accepted only from the dashboard itself "
        "(same origin, with its X-Unlimcall-Dashboard header); other clients use "
        "Authorization: Bearer $UNLIMCALL_ADMIN_TOKEN."
    )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def admin_fp(admin_token: str) -> str:
    """A short fingerprint of the admin token (not enough to recover or test it cheaply)."""
    return hashlib.sha256(f"dashboard:{admin_token}".encode()).hexdigest()[:16]


async def _insert(conn: Conn, kind: str, value: str, admin: str, ttl: float, now: float) -> None:
    await conn.execute(
        delete(dashboard_sessions).where(dashboard_sessions.c.expires_at < now - _FORGET_AFTER)
    )
    await conn.execute(
        dashboard_sessions.insert().values(
            id_hash=_digest(value),
            kind=kind,
            admin_fp=admin_fp(admin),
            created_at=now,
            expires_at=now + ttl,
            used_at=None,
        )
    )


async def new_code(conn: Conn, admin_token: str, now: float) -> str:
    """A one-time sign-in code (stored as its digest); ``now`` is wall time, as for every
    expiry here (``Clock.real_now``)."""
    code = _CODE_PREFIX + secrets.token_urlsafe(24)
    await _insert(conn, CODE, code, admin_token, CODE_TTL, now)
    return code


async def new_session(conn: Conn, admin_token: str, now: float) -> str:
    session = _SESSION_PREFIX + secrets.token_urlsafe(32)
    await _insert(conn, SESSION, session, admin_token, SESSION_TTL, now)
    return session


async def redeem(conn: Conn, code: str, admin_token: str, now: float) -> str | None:
    """Spend a code: a new session, or None when the code is unknown, spent or expired.
    One conditional UPDATE, so two processes redeeming the same code cannot both win."""
    if not code.startswith(_CODE_PREFIX) or len(code) > 100:
        return None
    result = await conn.execute(
        update(dashboard_sessions)
        .where(
            dashboard_sessions.c.id_hash == _digest(code),
            dashboard_sessions.c.kind == CODE,
            dashboard_sessions.c.used_at.is_(None),
            dashboard_sessions.c.expires_at > now,
            dashboard_sessions.c.admin_fp == admin_fp(admin_token),
        )
        .values(used_at=now)
    )
    if result.rowcount != 1:
        return None
    return await new_session(conn, admin_token, now)


async def valid(conn: Conn, session: str, admin_token: str, now: float) -> bool:
    if not session.startswith(_SESSION_PREFIX) or len(session) > 100:
        return False
    found = (
        await conn.execute(
            select(dashboard_sessions.c.id_hash).where(
                dashboard_sessions.c.id_hash == _digest(session),
                dashboard_sessions.c.kind == SESSION,
                dashboard_sessions.c.expires_at > now,
                dashboard_sessions.c.admin_fp == admin_fp(admin_token),
            )
        )
    ).first()
    return found is not None


async def end(conn: Conn, session: str) -> None:
    await conn.execute(
        delete(dashboard_sessions).where(
            dashboard_sessions.c.id_hash == _digest(session),
            dashboard_sessions.c.kind == SESSION,
        )
    )


def is_secure(connection: Any, settings: Settings) -> bool:
    """Mark the cookie Secure when the dashboard is reached over https."""
    if connection.url.scheme == "https":
        return True
    return bool(settings.public_url and settings.public_url.startswith("https://"))


def _own_origins(connection: Any, settings: Settings) -> set[str]:
    origins = set()
    host = connection.headers.get("host")
    if host:
        origins.add(f"{connection.url.scheme}://{host}".lower())
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return origins


def check_origin(connection: Any, settings: Settings, *, changes_state: bool) -> None:
    """Refuse a cookie-authenticated request that may come from another origin.

    Every request: a browser's ``Sec-Fetch-Site`` must say ``same-origin`` (or ``none``,
    a typed URL, for reads), and an ``Origin`` must be this sandbox. Requests that change
    state also need the dashboard's ``X-Unlimcall-Dashboard`` header."""
    fetch_site = connection.headers.get("sec-fetch-site")
    allowed_sites = ("same-origin",) if changes_state else ("same-origin", "none")
    if fetch_site is not None and fetch_site not in allowed_sites:
        raise CrossOrigin()
    origin = connection.headers.get("origin")
    if origin is not None and origin.lower() not in _own_origins(connection, settings):
        raise CrossOrigin()
    if changes_state and not connection.headers.get(HEADER):
        raise CrossOrigin()


async def session_of(connection: Any, db: Database, settings: Settings, now: float) -> bool:
    """Whether the request carries a live dashboard session cookie, checked for its origin
    (``CrossOrigin`` when it fails the check)."""
    value = connection.cookies.get(COOKIE)
    if not value:
        return False
    admin = settings.admin_token or ""
    if not admin:
        return False
    async with db.read() as conn:
        if not await valid(conn, value, admin, now):
            return False
    check_origin(
        connection, settings, changes_state=connection.scope["method"] not in _SAFE_METHODS
    )
    return True


async def admitted(connection: Any, db: Database, settings: Settings, now: float) -> bool:
    """For the control plane's admin guard: True when the request is the dashboard's,
    signed in by cookie. A request with an Authorization header is judged by that alone."""
    if connection.headers.get("authorization"):
        return False
    return await session_of(connection, db, settings, now)


async def mint_link(settings: Settings, base_url: str | None = None) -> str:
    """A fresh one-click sign-in link, made straight in the database (``serve`` at start)."""
    from unlimcall_sandbox.server.db.engine import dispose, make_engine

    assert settings.admin_token
    engine = make_engine(settings)
    try:
        async with write(engine) as conn:
            # Before any Runtime (and its clock) exists: wall time, read here.
            code = await new_code(conn, settings.admin_token, time.time())
    finally:
        await dispose(engine)
    return login_url(base_url or settings.base_url, code)


def login_url(base_url: str, code: str) -> str:
    return f"{base_url.rstrip('/')}{LOGIN_PATH}?code={code}"


def banner_link(settings: Settings) -> str | None:
    """For ``serve``'s banner (before the server runs): a fresh sign-in link, or None when
    it could not be made (the banner then shows the plain dashboard URL)."""
    import asyncio
    import logging

    try:
        return asyncio.run(mint_link(settings))
    except Exception as exc:  # the banner must print whatever happens here
        logging.getLogger("unlimcall").warning("no dashboard sign-in link: %s", exc)
        return None
