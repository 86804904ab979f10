"""HTTP plumbing shared by every controller: the error envelope, body parsing, the
per-request transaction, and the request-id / access-log middleware."""

from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.exceptions import MethodNotAllowedException as LitestarMethodNotAllowed
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncConnection

from unlimcall_sandbox.server.auth import Principal
from unlimcall_sandbox.server.db.engine import write
from unlimcall_sandbox.server.errors import ApiError, InvalidInput
from unlimcall_sandbox.server.job_queue import JobSpec
from unlimcall_sandbox.server.metrics import RequestMetrics
from unlimcall_sandbox.server.runtime import Runtime

log = logging.getLogger("unlimcall.http")
access_log = logging.getLogger("unlimcall.access")

T = TypeVar("T")

_JSON = "application/json"
_STATUS_CODES = {
    400: "invalid_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
_encoder = msgspec.json.Encoder()


def runtime(request: Request[Any, Any, Any]) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


def envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = _encoder.encode({"error": code, "message": message})
    return Response(content=body, status_code=status, media_type=_JSON, headers=headers)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, ApiError):
        return envelope(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, NotFoundException):
        return envelope(404, "not_found", f"No route {request.method} {request.url.path}.")
    if isinstance(exc, LitestarMethodNotAllowed):
        return envelope(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed here.",
            {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"},
        )
    if isinstance(exc, ValidationException):
        return envelope(400, "invalid_input", "Request parameters failed validation.")
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status >= 500:
            log.error("http error %s on %s %s", status, request.method, request.url.path)
        code = _STATUS_CODES.get(status, "internal_error" if status >= 500 else "bad_request")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else code
        if status == 413:
            detail = "Request body too large."
        return envelope(status, code, detail)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return envelope(500, "internal_error", "Internal error; see the sandbox log.")


def json_media(content_type: str) -> bool:
    """Whether a Content-Type header (or its absence: "") announces JSON."""
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        not media
        or media == _JSON
        or (media.startswith("application/") and media.endswith("+json"))
    )


async def read_json(request: Request[Any, Any, Any]) -> Any:
    """The body as JSON, or ``invalid_input`` for a wrong content type, bad UTF-8 or bad
    JSON. A missing Content-Type is accepted (curl ``-d`` users)."""
    if not json_media(request.headers.get("content-type", "")):
        raise InvalidInput("Content-Type must be application/json.")
    body = await request.body()
    if not body.strip():
        raise InvalidInput("Request body must be a JSON object.")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"Body is not valid JSON: {exc}.") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput("Body is not valid UTF-8.") from exc
    except RecursionError as exc:
        raise InvalidInput("Body is nested too deeply.") from exc


async def read_struct(request: Request[Any, Any, Any], type_: type[T]) -> T:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidInput("Request body must be a JSON object.")
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc)) from exc


@dataclass
class Tx:
    """One request's transaction, and the jobs to enqueue once it has committed."""

    conn: AsyncConnection
    rt: Runtime
    after_commit: list[JobSpec] = field(default_factory=list)
    on_commit: list[Callable[[], None]] = field(default_factory=list)
    """Cache invalidations: run only once the change is visible to other connections,
    or a concurrent refresh could cache the old state again."""


TxDep = NamedDependency[Tx]
"""How a handler asks for the request's transaction."""
PrincipalDep = NamedDependency[Principal]
"""How a /v1 handler asks for the authenticated caller (scope from the route's opt)."""


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    scope: str | None = request.route_handler.opt.get("scope")
    return await runtime(request).verifier.authenticate(request.headers.get("authorization"), scope)


async def provide_tx(request: Request[Any, Any, Any]) -> AsyncGenerator[Tx, None]:
    """The request's write transaction: committed when the handler returns, rolled back
    when it raises; queued jobs are enqueued only after the commit."""
    rt = runtime(request)
    async with write(rt.engine) as conn:
        tx = Tx(conn, rt)
        yield tx
    await committed(tx)


async def committed(tx: Tx) -> None:
    """What follows a commit: cache invalidations, then the jobs the transaction queued."""
    for callback in tx.on_commit:
        callback()
    if tx.after_commit:
        await tx.rt.jobs.enqueue(tx.after_commit)


async def provide_authed_tx(
    request: Request[Any, Any, Any], principal: PrincipalDep
) -> AsyncGenerator[Tx, None]:
    """As ``provide_tx``, opened only once the caller is authenticated: verifying a token
    may need a connection of its own, which must never wait behind our write lock."""
    async for tx in provide_tx(request):
        yield tx


async def provide_body(request: Request[Any, Any, Any], principal: PrincipalDep) -> Any:
    """The JSON body, read after auth (no parsing for strangers) and before the write
    transaction opens (a slow upload must not hold the SQLite write lock)."""
    return await read_json(request)


async def provide_body_tx(
    request: Request[Any, Any, Any], principal: PrincipalDep, payload: NamedDependency[Any]
) -> AsyncGenerator[Tx, None]:
    async for tx in provide_tx(request):
        yield tx


_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestLogMiddleware:
    """Gives every response an ``X-Request-Id`` (the caller's, when it is sane) and writes
    one JSON log line per request with the same id, route, status and latency."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: RequestMetrics,
        enabled: bool = True,
        fast: Callable[[HTTPScope, Receive, Send], Awaitable[Receive | None]] | None = None,
    ) -> None:
        self.app = app
        self.fast = fast
        self.enabled = enabled
        self.metrics = metrics
        # Request ids: a random per-process prefix and a counter (uuid4 per request showed
        # up in profiles); unique across processes and restarts, 32 hex characters.
        self._prefix = uuid.uuid4().hex[:16]
        self._counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        http_scope: HTTPScope = scope
        started = time.perf_counter()
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _SAFE_ID.match(candidate):
                    request_id = candidate
                break
        if not request_id:
            request_id = f"{self._prefix}{next(self._counter):016x}"
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        header = (b"x-request-id", request_id.encode())

        state = scope["state"]
        dropped = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, dropped
            if state.get("drop_connection"):
                # A fault rule asked to drop the connection: promise a body, send none, and
                # return; the server closes the connection mid-response.
                if message["type"] == "http.response.start" and not dropped:
                    dropped, status = True, 0
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [(b"content-length", b"1024"), header],
                        }
                    )
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            # The fast path answers (None), or gives Litestar what to read the body from.
            rest = (
                receive if self.fast is None else await self.fast(http_scope, receive, send_wrapper)
            )
            if rest is not None:
                await self.app(scope, rest, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe(http_scope["method"], _route_of(scope), status, elapsed)
            if self.enabled:
                access_log.info(
                    _encoder.encode(
                        {
                            "msg": "request",
                            "requestId": request_id,
                            "method": http_scope["method"],
                            "path": scope["path"],
                            "route": _route_of(scope),
                            "status": status,
                            "latencyMs": round(elapsed * 1000, 2),
                        }
                    ).decode()
                )


def _route_of(scope: Scope) -> str:
    """The matched route template (``/v1/hooks/{hook_id:str}``), empty when none matched."""
    return str(scope.get("path_template") or "")
