"""Signing in to the dashboard: a one-time code (the link ``serve`` prints) is exchanged
once for an HttpOnly, SameSite=Strict session cookie; the control plane and the live stream
accept that cookie, and writes made with it must come from the dashboard's own origin.
Nothing here mints a portal token."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookiejar import DefaultCookiePolicy
from http.cookies import SimpleCookie
from typing import Any

import httpx
from sqlalchemy import func, select, update

from tests.support.contract import response_hook
from tests.support.sandbox import ADMIN, Sandbox
from unlimcall_sandbox.server.db.engine import read, write
from unlimcall_sandbox.server.db.tables import dashboard_sessions, tokens
from unlimcall_sandbox.server.services import dashboard_session

COOKIE = dashboard_session.COOKIE
DASHBOARD = {"X-Unlimcall-Dashboard": "1"}


@asynccontextmanager
async def browserish(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A client of its own (the shared one must never carry a session cookie), every
    response checked as the suite checks them."""
    async with httpx.AsyncClient(
        base_url=sandbox.base_url, timeout=30, event_hooks={"response": [response_hook]}
    ) as client:
        client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # keep none
        yield client


async def _link(sandbox: Sandbox) -> str:
    r = await sandbox.client.post("/_sandbox/dashboard/links", headers=sandbox.admin)
    assert r.status_code == 201, r.text
    path: str = r.json()["path"]
    assert path.startswith("/dashboard/login?code=dlc_")
    return path


def _set_cookie(r: httpx.Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in r.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


async def _token_count(sandbox: Sandbox) -> int:
    async with read(sandbox.rt.engine) as conn:
        return int((await conn.execute(select(func.count()).select_from(tokens))).scalar_one())


async def _signed_in(sandbox: Sandbox) -> str:
    """A fresh session cookie value, through the link."""
    async with browserish(sandbox) as client:
        r = await client.get(await _link(sandbox))
    assert r.status_code == 303, r.text
    return _set_cookie(r)[COOKIE].value


def _with(session: str, **extra: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={session}", **extra}


async def test_a_link_signs_in_once_with_a_strict_httponly_cookie_and_mints_nothing(
    sandbox: Sandbox,
) -> None:
    before = await _token_count(sandbox)
    path = await _link(sandbox)
    async with browserish(sandbox) as client:
        r = await client.get(path)
        assert r.status_code == 303
        assert r.headers["location"] == "/dashboard"  # no code left in the address bar
        assert "no-store" in r.headers["cache-control"]
        cookie = _set_cookie(r)[COOKIE]
        assert cookie.value.startswith("dls_")
        assert cookie["httponly"] is True
        assert cookie["samesite"].lower() == "strict"
        assert cookie["path"] == "/"
        assert not cookie["max-age"]  # a browser-session cookie
        session = cookie.value
        listed = await client.get("/_sandbox/accounts", headers=_with(session))
        assert listed.status_code == 200
        assert any(a["customerId"] == "1042" for a in listed.json()["accounts"])
        # The same link again: spent. A browser without the cookie goes to the sign-in form…
        again = await client.get(path)
        assert again.status_code == 303
        assert again.headers["location"] == "/dashboard?signin=expired"
        assert COOKIE not in _set_cookie(again)
        # …one that is signed in already simply lands on the dashboard.
        signed = await client.get(path, headers=_with(session))
        assert (signed.status_code, signed.headers["location"]) == (303, "/dashboard")
        assert COOKIE not in _set_cookie(signed)
        page = await client.get("/dashboard/session", headers=_with(session))
        assert page.json() == {"signedIn": True}
    assert await _token_count(sandbox) == before


async def test_a_code_expires_and_a_made_up_one_is_refused(sandbox: Sandbox) -> None:
    path = await _link(sandbox)
    code = path.split("code=")[1]
    async with write(sandbox.rt.engine) as conn:
        await conn.execute(
            update(dashboard_sessions)
            .where(dashboard_sessions.c.kind == "code")
            .where(dashboard_sessions.c.used_at.is_(None))
            .values(expires_at=time.time() - 1)
        )
    async with browserish(sandbox) as client:
        for attempt in (code, "dlc_made_up", "", "x" * 500):
            r = await client.get("/dashboard/login", params={"code": attempt})
            assert r.status_code == 303
            assert r.headers["location"] == "/dashboard?signin=expired", attempt
            assert COOKIE not in _set_cookie(r)


async def test_a_code_made_by_another_process_is_redeemed_here(sandbox: Sandbox) -> None:
    """``serve`` makes its code straight in the database before the API starts: any API
    process redeems it."""
    link = await dashboard_session.mint_link(sandbox.settings, "http://example.invalid")
    assert link.startswith("http://example.invalid/dashboard/login?code=dlc_")
    async with browserish(sandbox) as client:
        r = await client.get(link.removeprefix("http://example.invalid"))
    assert (r.status_code, r.headers["location"]) == (303, "/dashboard")
    assert COOKIE in _set_cookie(r)


async def test_writes_by_cookie_need_the_dashboards_header_and_origin(sandbox: Sandbox) -> None:
    session = await _signed_in(sandbox)
    body = {"companyName": "Cookie Co", "primaryContactEmail": "c@example.com"}
    own = sandbox.base_url
    async with browserish(sandbox) as client:
        refused = [
            _with(session),  # no X-Unlimcall-Dashboard: a form post from anywhere
            _with(session, **DASHBOARD, Origin="http://evil.example"),
            _with(session, **DASHBOARD, Origin=own.replace("127.0.0.1", "localhost")),
            _with(session, **DASHBOARD, **{"Sec-Fetch-Site": "cross-site"}),
            # Another port of this host is the same site, so SameSite lets the cookie go:
            # the origin check is what stops it.
            _with(session, **DASHBOARD, **{"Sec-Fetch-Site": "same-site"}),
        ]
        for headers in refused:
            r = await client.post("/_sandbox/accounts", json=body, headers=headers)
            assert r.status_code == 403, headers
            assert r.json()["error"] == "forbidden"
        ok = await client.post(
            "/_sandbox/accounts",
            json=body,
            headers=_with(session, **DASHBOARD, Origin=own, **{"Sec-Fetch-Site": "same-origin"}),
        )
        assert ok.status_code == 201, ok.text
        # Reads by cookie: not from another site either.
        r = await client.get(
            "/_sandbox/accounts", headers=_with(session, **{"Sec-Fetch-Site": "cross-site"})
        )
        assert r.status_code == 403
        # No cookie: the bearer rule as before, and a made-up cookie is no session.
        r = await client.post("/_sandbox/accounts", json=body, headers=DASHBOARD)
        assert r.status_code == 401
        r = await client.get("/_sandbox/accounts", headers=_with("dls_made_up"))
        assert r.status_code == 401
    # The admin bearer needs no header: scripts and the CLI are unchanged.
    r = await sandbox.client.post("/_sandbox/accounts", json=body, headers=sandbox.admin)
    assert r.status_code == 201


async def test_signing_in_with_the_admin_token_and_out(sandbox: Sandbox) -> None:
    async with browserish(sandbox) as client:
        r = await client.post("/dashboard/session", json={"token": ADMIN})
        assert r.status_code == 403  # not from the page
        r = await client.post("/dashboard/session", json={"token": "adm_wrong"}, headers=DASHBOARD)
        assert r.status_code == 401
        r = await client.post("/dashboard/session", json={"token": ADMIN}, headers=DASHBOARD)
        assert r.status_code == 200, r.text
        cookie = _set_cookie(r)[COOKIE]
        assert cookie["httponly"] is True and cookie["samesite"].lower() == "strict"
        session = cookie.value
        assert (await client.get("/_sandbox/clock", headers=_with(session))).status_code == 200
        out = await client.post("/dashboard/logout", headers=_with(session, **DASHBOARD))
        assert out.status_code == 200
        assert _set_cookie(out)[COOKIE]["max-age"] == "0"
        assert (await client.get("/_sandbox/clock", headers=_with(session))).status_code == 401
        assert (await client.get("/dashboard/session", headers=_with(session))).json() == {
            "signedIn": False
        }


async def test_a_session_belongs_to_the_admin_token_it_was_made_with(sandbox: Sandbox) -> None:
    session = await _signed_in(sandbox)
    now = sandbox.rt.clock.real_now()
    async with sandbox.rt.db.read() as conn:
        assert await dashboard_session.valid(conn, session, ADMIN, now)
        assert not await dashboard_session.valid(conn, session, ADMIN + "-rotated", now)
        # Its expiry is read from the one clock: a day later it is gone.
        assert not await dashboard_session.valid(conn, session, ADMIN, now + 86400)


async def test_the_live_stream_takes_the_cookie(sandbox: Sandbox) -> None:
    session = await _signed_in(sandbox)
    # No response hook: it would read an endless stream to its end.
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=30) as client:
        client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        r = await client.get("/_sandbox/stream/1042")
        assert r.status_code == 401
        async with client.stream(
            "GET", "/_sandbox/stream/1042", headers=_with(session, Accept="text/event-stream")
        ) as stream:
            assert stream.status_code == 200
            first = await _first_event(stream)
        assert first.startswith("event: hello")


async def _first_event(stream: Any) -> str:
    text = ""
    async for chunk in stream.aiter_text():
        text += chunk.replace("\r\n", "\n")
        if "\n\n" in text:
            break
    return text.lstrip()
