"""The fast path of the hottest operations: ``GET /v1/me``, ``/v1/balance``, ``/v1/cdrs``
and ``POST /v1/calls``.

Integrators' CI loops and dashboards poll these; Litestar's routing, dependency injection
and response machinery cost more than the work itself. An ordinary request (no ``Prefer``,
no ``Origin``, no fault rule for the operation, one valid token with the scope, simple
query parameters, a JSON body within the size limit) is answered here, by the same
functions the Litestar handlers call, in the same order (auth, body, transaction, commit,
jobs). Anything else, and every error, goes on to Litestar with the body it would have
read: errors are rendered in one place only, and the answer is the same either way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import msgspec
from litestar import Litestar
from litestar.types import HTTPReceiveMessage, HTTPScope, Receive, ReceiveMessage, Send

from unlimcall_sandbox.server.api.v1 import balance_of, cdrs_of, me_of
from unlimcall_sandbox.server.auth import Principal
from unlimcall_sandbox.server.db.engine import write
from unlimcall_sandbox.server.http import Tx, committed, json_media
from unlimcall_sandbox.server.runtime import Runtime
from unlimcall_sandbox.server.services import calls as call_service
from unlimcall_sandbox.server.structs import CallQueued

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
Handler = Callable[[Runtime, Principal, bytes], Awaitable[bytes | None]]

# /v1/cdrs query strings taken here: each of from/till/limit at most once, values of
# characters that need no decoding (anything else goes to Litestar's parser).
_CDRS_QUERY = re.compile(rb"(?:(?:from|till|limit)=[A-Za-z0-9:._-]*(?:&|$))*")


async def _me(rt: Runtime, principal: Principal, query: bytes) -> bytes | None:
    return None if query else _encode(me_of(principal))


async def _balance(rt: Runtime, principal: Principal, query: bytes) -> bytes | None:
    return None if query else _encode(await balance_of(rt, principal))


async def _cdrs(rt: Runtime, principal: Principal, query: bytes) -> bytes | None:
    if query and (query.endswith(b"&") or not _CDRS_QUERY.fullmatch(query)):
        return None
    params: dict[str, str] = {}
    for pair in query.decode().split("&") if query else ():
        name, _, value = pair.partition("=")
        if name in params:
            return None  # given twice: Litestar's path says so
        params[name] = value
    return await cdrs_of(rt, principal, params.get("from"), params.get("till"), params.get("limit"))


# (method, path) -> (operation, scope, handler); the POST handler is _originate.
_READS: dict[str, tuple[str, str | None, Handler]] = {
    "/v1/me": ("getMe", None, _me),
    "/v1/balance": ("getBalance", "read:balance", _balance),
    "/v1/cdrs": ("listCdrs", "read:cdrs", _cdrs),
}
_ORIGINATE = ("originateCall", "write:calls")


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A ``receive`` that first gives back the body already read, then the rest."""
    pending: list[HTTPReceiveMessage] = [{"type": "http.request", "body": body, "more_body": more}]

    async def again() -> ReceiveMessage:
        return pending.pop() if pending else await receive()

    return again


class FastPath:
    def __init__(self, app: Litestar, max_body: int) -> None:
        self._app = app
        self._max_body = max_body

    async def __call__(self, scope: HTTPScope, receive: Receive, send: Send) -> Receive | None:
        """None once the request is answered; otherwise the ``receive`` Litestar must read
        the request body from."""
        method = scope["method"]
        if method == "GET":
            route = _READS.get(scope["path"])
            if route is None:
                return receive
            operation, token_scope = route[0], route[1]
        elif method == "POST" and scope["path"] == "/v1/calls":
            route = None
            operation, token_scope = _ORIGINATE
        else:
            return receive
        rt: Runtime | None = getattr(self._app.state, "rt", None)
        if rt is None or not rt.faults.quiet("api", operation):
            return receive
        authorization: bytes | None = None
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:
                    return receive
                authorization = value
            elif name == b"content-type":
                content_type = value
            elif name == b"prefer" or name == b"origin":
                return receive
        if authorization is None:
            return receive
        # Any error — an ApiError, or anything unexpected — leaves the answer to Litestar,
        # which renders it; nothing here has a side effect that a second try could repeat.
        try:
            principal = await rt.verifier.authenticate(authorization.decode("latin-1"), token_scope)
        except Exception:
            return receive
        if route is not None:
            try:
                body = await route[2](rt, principal, scope["query_string"])
            except Exception:
                return receive
            if body is None:
                return receive
        else:
            if not json_media(content_type.decode("latin-1")):
                return receive
            raw, more, over = await self._read(receive)
            if over:
                return _replay(raw, more, receive)  # too large: Litestar answers 413
            try:
                tx, queued = await self._originate(rt, principal, raw)
            except Exception:  # rolled back, nothing committed: Litestar answers
                return _replay(raw, False, receive)
            await committed(tx)  # cannot fail: enqueue errors are logged, the sweep retries
            body = _encode(queued)
        scope["path_template"] = scope["path"]  # the route label of metrics and logs
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return None

    async def _read(self, receive: Receive) -> tuple[bytes, bool, bool]:
        """The body, or its first chunks once past the size limit; whether more is left
        to read; whether it is over the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), False, False  # the client went away
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self._max_body:
                return b"".join(chunks), more, True
            if not more:
                return b"".join(chunks), False, False

    @staticmethod
    async def _originate(rt: Runtime, principal: Principal, raw: bytes) -> tuple[Tx, CallQueued]:
        """``POST /v1/calls``'s transaction exactly as its Litestar handler runs it; raises
        what it does, with the transaction rolled back."""
        if not raw.strip():
            raise msgspec.DecodeError("empty body")
        payload = _decode(raw)
        async with write(rt.engine) as conn:
            tx = Tx(conn, rt)
            queued = await call_service.originate(tx, principal.account_id, payload)
        return tx, queued
