"""The fast path of the hottest reads: ``GET /v1/me``, ``/v1/balance`` and ``/v1/cdrs``.

Integrators' CI loops and dashboards poll these; Litestar's routing, dependency injection
and response machinery cost more than the work itself. An ordinary request (no ``Prefer``,
no ``Origin``, no fault rule for the operation, one valid token with the scope, simple
query parameters) is answered here, by the same functions the Litestar handlers call.
Anything else, and every error, falls through to Litestar untouched: errors are rendered
in one place only, and the answer is the same byte for byte either way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import msgspec
from litestar import Litestar
from litestar.types import HTTPScope, Send

from server.api.v1 import balance_of, cdrs_of, me_of
from server.auth import Principal
from server.errors import ApiError
from server.runtime import Runtime

_encode = msgspec.json.Encoder().encode
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


# path -> (operation, scope, handler)
_ROUTES: dict[str, tuple[str, str | None, Handler]] = {
    "/v1/me": ("getMe", None, _me),
    "/v1/balance": ("getBalance", "read:balance", _balance),
    "/v1/cdrs": ("listCdrs", "read:cdrs", _cdrs),
}


class FastPath:
    def __init__(self, app: Litestar) -> None:
        self._app = app

    async def __call__(self, scope: HTTPScope, send: Send) -> bool:
        """Answer the request if it is an ordinary one; False when Litestar must."""
        route = _ROUTES.get(scope["path"])
        if route is None or scope["method"] != "GET":
            return False
        rt: Runtime | None = getattr(self._app.state, "rt", None)
        operation, token_scope, handler = route
        if rt is None or not rt.faults.quiet("api", operation):
            return False
        authorization: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:
                    return False
                authorization = value
            elif name == b"prefer" or name == b"origin":
                return False
        if authorization is None:
            return False
        try:
            principal = await rt.verifier.authenticate(authorization.decode("latin-1"), token_scope)
            body = await handler(rt, principal, scope["query_string"])
        except ApiError:
            return False
        if body is None:
            return False
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
        return True
