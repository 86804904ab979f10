"""The live dashboard: the page (public; it asks for the admin token), its read models and
a server-sent event stream of calls and deliveries as they change."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request, Response, Router, get
from litestar.params import FromPath
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from litestar.static_files import create_static_files_router

from unlimcall_sandbox.resources import directory
from unlimcall_sandbox.server.db.engine import read
from unlimcall_sandbox.server.errors import Unauthorized
from unlimcall_sandbox.server.http import runtime
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import dashboard as dashboard_service

Req = Request[Any, Any, Any]
STATIC = directory("server", "static", "dashboard")
TICK = 0.5


@get("/dashboard", include_in_schema=False)
async def page() -> Response[bytes]:
    return Response(content=(STATIC / "index.html").read_bytes(), media_type="text/html")


@get("/_sandbox/stream/{customer_id:str}")
async def stream(request: Req, customer_id: FromPath[str]) -> ServerSentEvent:
    """EventSource cannot send headers: the admin token comes as ``?token=``."""
    rt = runtime(request)
    expected = rt.settings.admin_token or ""
    given = request.query_params.get("token", "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("The stream needs ?token=<admin token>.")
    account_id = account_service.parse_customer_id(customer_id)

    async def events() -> AsyncGenerator[ServerSentEventMessage, None]:
        since = rt.clock.now()
        yield ServerSentEventMessage(
            event="hello", data=dashboard_service.encode({"sandboxTime": since})
        )
        while True:
            await asyncio.sleep(TICK)
            now = rt.clock.now()
            async with read(rt.engine) as conn:
                changed = await dashboard_service.changes(conn, account_id, since)
            since = now
            for call in changed["calls"]:
                yield ServerSentEventMessage(event="call", data=dashboard_service.encode(call))
            for delivery in changed["deliveries"]:
                yield ServerSentEventMessage(
                    event="delivery", data=dashboard_service.encode(delivery)
                )
            yield ServerSentEventMessage(comment="tick")

    return ServerSentEvent(events())


static_router = create_static_files_router(
    path="/dashboard/static", directories=[STATIC], include_in_schema=False
)

dashboard_router = Router(path="/", route_handlers=[page, stream, static_router])
