"""``/_sandbox/inbox/{name}``: POST is open (webhooks carry no admin token); reading,
configuring and clearing an inbox need the admin token."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, delete, get, post, put
from litestar.di import Provide
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK

from unlimcall_sandbox.server.api.sandbox import admin_guard
from unlimcall_sandbox.server.http import TxDep, provide_tx, read_struct, runtime
from unlimcall_sandbox.server.services import cdrs as cdr_service
from unlimcall_sandbox.server.services import inbox as inbox_service
from unlimcall_sandbox.server.structs import (
    InboxCleared,
    InboxConfigured,
    InboxReceipt,
    InboxView,
)

Req = Request[Any, Any, Any]


class InboxSettings(msgspec.Struct, forbid_unknown_fields=True):
    status: int


@post("/{name:str}", status_code=HTTP_200_OK)
async def receive(request: Req, tx: TxDep, name: FromPath[str]) -> Response[InboxReceipt]:
    """Answers with the inbox's configured status (default 200), whatever it is."""
    inbox = inbox_service.check_name(name)
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    s = tx.rt.settings
    caps = inbox_service.InboxCaps(s.inbox_message_bytes, s.inbox_max_messages, s.inbox_max_inboxes)
    status, state = await inbox_service.record(
        tx.conn, inbox, request.method, headers, body, tx.rt.clock.now(), caps
    )
    receipt = InboxReceipt(inbox=inbox, received=True, signature=state)
    return Response(content=receipt, status_code=status, media_type="application/json")


@get("/{name:str}", guards=[admin_guard])
async def read_inbox(request: Req, name: FromPath[str]) -> InboxView:
    inbox = inbox_service.check_name(name)
    limit = cdr_service.parse_limit(request.query_params.get("limit"))
    async with runtime(request).db.read() as conn:
        return await inbox_service.listing(conn, inbox, limit)


@put("/{name:str}", guards=[admin_guard])
async def configure(request: Req, tx: TxDep, name: FromPath[str]) -> InboxConfigured:
    inbox = inbox_service.check_name(name)
    data = await read_struct(request, InboxSettings)
    await inbox_service.set_status(tx.conn, inbox, data.status, tx.rt.clock.now())
    return InboxConfigured(inbox=inbox, status=data.status)


@delete("/{name:str}", guards=[admin_guard], status_code=HTTP_200_OK)
async def clear(tx: TxDep, name: FromPath[str]) -> InboxCleared:
    inbox = inbox_service.check_name(name)
    await inbox_service.clear(tx.conn, inbox)
    return InboxCleared(inbox=inbox, cleared=True)


inbox_router = Router(
    path="/_sandbox/inbox",
    dependencies={"tx": Provide(provide_tx)},
    route_handlers=[receive, read_inbox, configure, clear],
)
