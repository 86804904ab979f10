"""The live dashboard: the page and its assets (public), signing in (a one-time link or the
admin token, exchanged for an HttpOnly session cookie), the read models it shows (behind
the admin guard, which accepts that cookie) and a server-sent event stream of calls,
deliveries and the call floor as they change."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import CacheControlHeader, Cookie
from litestar.params import FromPath
from litestar.response import Redirect, ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from unlimcall_sandbox.resources import directory
from unlimcall_sandbox.server.api.demo import demo_router
from unlimcall_sandbox.server.api.sandbox import admin_guard
from unlimcall_sandbox.server.errors import InvalidInput, Unauthorized
from unlimcall_sandbox.server.http import read_struct, runtime
from unlimcall_sandbox.server.runtime import Runtime
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import dashboard as dashboard_service
from unlimcall_sandbox.server.services import dashboard_session as session_service
from unlimcall_sandbox.server.services import deliveries as delivery_service
from unlimcall_sandbox.server.services import demo as demo_service
from unlimcall_sandbox.server.services import inbox as inbox_service

Req = Request[Any, Any, Any]
STATIC = directory("server", "static", "dashboard")
TICK = 0.5
# The stream re-checks its session, and looks for demo runs that lost their job, every
# this many ticks.
RECHECK_TICKS = 20
# Webhook attempts are looked for by the wall time they were stored, this far back from the
# last tick: a worker stamps the time just before its transaction commits, so a tick in
# between would otherwise miss the attempt for good. What the stream sent already, unchanged,
# is not sent again.
STORED_LOOKBACK = 2.0
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # Everything the page uses comes from this sandbox: no CDN, no external font.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
}
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


# -- the page and signing in ------------------------------------------------------------------


def _cookie(value: str, secure: bool, max_age: int | None = None) -> Cookie:
    """The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's
    request carries it), for the whole sandbox (the control plane is under /_sandbox);
    without max-age it lasts the browser session."""
    return Cookie(
        key=session_service.COOKIE,
        value=value,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
        max_age=max_age,
    )


@get("/dashboard", include_in_schema=False)
async def page() -> Response[bytes]:
    return Response(
        content=(STATIC / "index.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers=_PAGE_HEADERS,
    )


@get("/dashboard/login", include_in_schema=False)
async def login(request: Req) -> Redirect:
    """Spend a one-time code for a session cookie, then go to the dashboard (no code in
    the address bar). A spent or expired code leads to the sign-in form, unless this
    browser is signed in already."""
    rt = runtime(request)
    code = request.query_params.get("code", "")
    admin = rt.settings.admin_token or ""
    session = None
    if code and admin:
        async with rt.db.write() as conn:
            session = await session_service.redeem(conn, code, admin, rt.clock.real_now())
    if session is None:
        signed_in = False
        try:
            signed_in = await session_service.session_of(
                request, rt.db, rt.settings, rt.clock.real_now()
            )
        except session_service.CrossOrigin:
            signed_in = False
        target = "/dashboard" if signed_in else "/dashboard?signin=expired"
        return Redirect(path=target, status_code=303, headers=_NO_STORE)
    secure = session_service.is_secure(request, rt.settings)
    return Redirect(
        path="/dashboard",
        status_code=303,
        headers=_NO_STORE,
        cookies=[_cookie(session, secure)],
    )


class SessionCreate(msgspec.Struct, forbid_unknown_fields=True):
    token: str


@get("/dashboard/session", include_in_schema=False)
async def whoami(request: Req) -> Response[dict[str, Any]]:
    rt = runtime(request)
    try:
        signed_in = await session_service.session_of(
            request, rt.db, rt.settings, rt.clock.real_now()
        )
    except session_service.CrossOrigin:
        signed_in = False
    return Response({"signedIn": signed_in}, headers=_NO_STORE)


@post("/dashboard/session", include_in_schema=False, status_code=HTTP_200_OK)
async def sign_in(request: Req) -> Response[dict[str, Any]]:
    """Sign in with the admin token (typed into the page): a session cookie, as the link
    gives. The token is checked once and not kept by the page."""
    rt = runtime(request)
    session_service.check_origin(request, rt.settings, changes_state=True)
    data = await read_struct(request, SessionCreate)
    expected = rt.settings.admin_token or ""
    if not expected or not hmac.compare_digest(data.token.strip().encode(), expected.encode()):
        raise Unauthorized("That is not the admin token of this sandbox.")
    async with rt.db.write() as conn:
        session = await session_service.new_session(conn, expected, rt.clock.real_now())
    secure = session_service.is_secure(request, rt.settings)
    return Response(
        {"signedIn": True},
        headers=_NO_STORE,
        cookies=[_cookie(session, secure)],
    )


@post("/dashboard/logout", include_in_schema=False, status_code=HTTP_200_OK)
async def sign_out(request: Req) -> Response[dict[str, Any]]:
    rt = runtime(request)
    session_service.check_origin(request, rt.settings, changes_state=True)
    value = request.cookies.get(session_service.COOKIE)
    if value:
        async with rt.db.write() as conn:
            await session_service.end(conn, value)
    secure = session_service.is_secure(request, rt.settings)
    return Response(
        {"signedIn": False}, headers=_NO_STORE, cookies=[_cookie("", secure, max_age=0)]
    )


@post("/_sandbox/dashboard/links", guards=[admin_guard], status_code=HTTP_201_CREATED)
async def new_link(request: Req) -> dict[str, Any]:
    """A fresh one-click sign-in link (``unlimcall-sandbox dashboard-link``)."""
    rt = runtime(request)
    assert rt.settings.admin_token
    async with rt.db.write() as conn:
        code = await session_service.new_code(conn, rt.settings.admin_token, rt.clock.real_now())
    path = session_service.login_url("", code)
    return {"path": path, "expiresInSec": int(session_service.CODE_TTL)}


# -- read models --------------------------------------------------------------------------------


def _int(request: Req, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidInput(f"{name} must be a non-negative integer.")
    return int(raw)


def _customer(raw: str) -> int:
    return account_service.parse_customer_id(raw)


@get("/_sandbox/dashboard/accounts/{customer_id:str}/floor", guards=[admin_guard])
async def floor(request: Req, customer_id: FromPath[str]) -> dict[str, Any]:
    rt = runtime(request)
    async with rt.db.read() as conn:
        return await dashboard_service.floor(
            conn, _customer(customer_id), rt.clock.now(), rt.clock.scale, rt.rates
        )


@get("/_sandbox/dashboard/accounts/{customer_id:str}/charts", guards=[admin_guard])
async def charts(request: Req, customer_id: FromPath[str]) -> dict[str, Any]:
    rt = runtime(request)
    account_id = _customer(customer_id)
    async with rt.db.read() as conn:
        await account_service.get(conn, account_id)
        return await dashboard_service.charts(conn, account_id, rt.clock.now())


@get("/_sandbox/dashboard/accounts/{customer_id:str}/calls", guards=[admin_guard])
async def calls_page(request: Req, customer_id: FromPath[str]) -> dict[str, Any]:
    rt = runtime(request)
    account_id = _customer(customer_id)
    async with rt.db.read() as conn:
        await account_service.get(conn, account_id)
        return await dashboard_service.calls_page(
            conn,
            account_id,
            _int(request, "offset", 0),
            _int(request, "limit", 10),
            rt.rates,
            in_flight=request.query_params.get("inFlight") == "true",
        )


@get("/_sandbox/dashboard/accounts/{customer_id:str}/deliveries", guards=[admin_guard])
async def deliveries_page(request: Req, customer_id: FromPath[str]) -> dict[str, Any]:
    rt = runtime(request)
    account_id = _customer(customer_id)
    status = request.query_params.get("status") or None
    if status is not None and status not in delivery_service.STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(delivery_service.STATUSES)}.")
    async with rt.db.read() as conn:
        await account_service.get(conn, account_id)
        return await dashboard_service.deliveries_page(
            conn, account_id, _int(request, "offset", 0), _int(request, "limit", 10), status
        )


@get("/_sandbox/dashboard/accounts/{customer_id:str}/cdrs", guards=[admin_guard])
async def cdrs_page(request: Req, customer_id: FromPath[str]) -> dict[str, Any]:
    rt = runtime(request)
    account_id = _customer(customer_id)
    q = request.query_params
    async with rt.db.read() as conn:
        await account_service.get(conn, account_id)
        return await dashboard_service.cdrs_page(
            conn,
            account_id,
            _int(request, "offset", 0),
            _int(request, "limit", 10),
            q.get("disposition") or None,
            q.get("country") or None,
        )


@get("/_sandbox/dashboard/accounts/{customer_id:str}/details", guards=[admin_guard])
async def details(request: Req, customer_id: FromPath[str]) -> dict[str, Any]:
    async with runtime(request).db.read() as conn:
        return await dashboard_service.account_details(conn, _customer(customer_id))


@get("/_sandbox/dashboard/calls/{call_id:str}", guards=[admin_guard])
async def call_story(request: Req, call_id: FromPath[str]) -> dict[str, Any]:
    rt = runtime(request)
    async with rt.db.read() as conn:
        return await dashboard_service.story(conn, call_id, rt.clock.now(), rt.rates)


@get("/_sandbox/dashboard/inboxes", guards=[admin_guard])
async def inbox_list(request: Req) -> dict[str, Any]:
    async with runtime(request).db.read() as conn:
        return {"inboxes": await dashboard_service.inbox_names(conn)}


@get("/_sandbox/dashboard/inboxes/{name:str}", guards=[admin_guard])
async def inbox_page(request: Req, name: FromPath[str]) -> dict[str, Any]:
    inbox = inbox_service.check_name(name)
    async with runtime(request).db.read() as conn:
        return await dashboard_service.inbox_page(
            conn, inbox, _int(request, "offset", 0), _int(request, "limit", 20)
        )


@get("/_sandbox/dashboard/inbox-messages/{message_id:int}", guards=[admin_guard])
async def inbox_message(request: Req, message_id: FromPath[int]) -> dict[str, Any]:
    async with runtime(request).db.read() as conn:
        return await dashboard_service.inbox_message(conn, message_id)


# -- the live stream ----------------------------------------------------------------------------


def _bearer_ok(request: Req, expected: str) -> bool:
    """The admin token as a bearer header, or as ``?token=`` (EventSource cannot send
    headers; the dashboard itself uses its session cookie instead)."""
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        given = request.query_params.get("token", "")
    given = given.strip()
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


async def _still_signed_in(rt: Runtime, value: str) -> bool:
    async with rt.db.read() as conn:
        return await session_service.valid(
            conn, value, rt.settings.admin_token or "", rt.clock.real_now()
        )


@get("/_sandbox/stream/{customer_id:str}")
async def stream(request: Req, customer_id: FromPath[str]) -> ServerSentEvent:
    """Server-sent events for one account: ``call`` and ``delivery`` as they change, and a
    ``floor`` snapshot whenever a call changed. The dashboard's session cookie, the admin
    bearer, or ``?token=<admin token>``."""
    rt = runtime(request)
    expected = rt.settings.admin_token or ""
    by_cookie = None
    if not (expected and _bearer_ok(request, expected)):
        if not await session_service.session_of(request, rt.db, rt.settings, rt.clock.real_now()):
            raise Unauthorized(
                "The stream needs the dashboard's session cookie, "
                "Authorization: Bearer <admin token> or ?token=<admin token>."
            )
        by_cookie = request.cookies.get(session_service.COOKIE)
    account_id = account_service.parse_customer_id(customer_id)
    async with rt.db.read() as conn:
        await account_service.get(conn, account_id)

    async def events() -> AsyncGenerator[ServerSentEventMessage, None]:
        since = rt.clock.now()
        yield ServerSentEventMessage(
            event="hello",
            data=dashboard_service.encode({"sandboxTime": since, "scale": rt.clock.scale}),
        )
        ticks = 0
        stored_since = rt.clock.real_now()
        sent: dict[str, tuple[Any, int]] = {}  # delivery id -> (status, attempts), last tick
        while True:
            await asyncio.sleep(TICK)
            ticks += 1
            now, real_now = rt.clock.now(), rt.clock.real_now()
            async with rt.db.read() as conn:
                changed = await dashboard_service.changes(
                    conn, account_id, since, stored_since - STORED_LOOKBACK
                )
                snapshot = None
                if changed["calls"]:
                    snapshot = await dashboard_service.floor(
                        conn, account_id, now, rt.clock.scale, rt.rates
                    )
                kicks = (
                    await demo_service.overdue(conn, rt.clock.real_now())
                    if ticks % RECHECK_TICKS == 0
                    else []
                )
            since, stored_since = now, real_now
            for call in changed["calls"]:
                yield ServerSentEventMessage(event="call", data=dashboard_service.encode(call))
            found = {d["id"]: (d["status"], len(d["attempts"])) for d in changed["deliveries"]}
            for delivery in changed["deliveries"]:
                if sent.get(delivery["id"]) != found[delivery["id"]]:
                    yield ServerSentEventMessage(
                        event="delivery", data=dashboard_service.encode(delivery)
                    )
            sent = found
            if snapshot is not None:
                yield ServerSentEventMessage(event="floor", data=dashboard_service.encode(snapshot))
            if kicks:
                await rt.jobs.enqueue(kicks)
            if (
                by_cookie is not None
                and ticks % RECHECK_TICKS == 0
                and not await _still_signed_in(rt, by_cookie)
            ):
                yield ServerSentEventMessage(event="signedout", data="{}")
                return
            yield ServerSentEventMessage(comment="tick")

    return ServerSentEvent(events(), headers={"Cache-Control": "no-store"})


static_router = create_static_files_router(
    path="/dashboard/static",
    directories=[STATIC],
    include_in_schema=False,
    cache_control=CacheControlHeader(no_cache=True),
)

dashboard_router = Router(
    path="/",
    route_handlers=[
        page,
        login,
        whoami,
        sign_in,
        sign_out,
        new_link,
        floor,
        charts,
        calls_page,
        deliveries_page,
        cdrs_page,
        details,
        call_story,
        inbox_list,
        inbox_page,
        inbox_message,
        stream,
        static_router,
        demo_router,
    ],
)
