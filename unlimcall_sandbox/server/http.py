"""HTTP plumbing shared by every controller: the edge every request passes (request id,
access log, metrics, HEAD, the body-size limit, CORS), the one exception handler and its
error envelope, body parsing, the per-request transaction, and lean routes: handlers that
read the raw ASGI scope instead of a ``Request`` (``lean``).
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl

import msgspec
from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.exceptions import (
    HTTPException,
    InternalServerException,
    NotFoundException,
    ValidationException,
)
from litestar.exceptions import MethodNotAllowedException as LitestarMethodNotAllowed
from litestar.handlers import ASGIRouteHandler
from litestar.types import ASGIApp, ExceptionHandlersMap, HTTPScope, Message, Receive, Scope, Send

from unlimcall_sandbox.server.auth import Principal
from unlimcall_sandbox.server.bodies import ClientGone, buffer_body
from unlimcall_sandbox.server.budget import time_budget
from unlimcall_sandbox.server.db.unit import UnitOfWork, committed_soon
from unlimcall_sandbox.server.errors import ApiError, InvalidInput
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

PRINCIPAL = "unlimcall.principal"
"""Where the ``/v1`` gate (``api.gate``) leaves the caller it authenticated, in
``scope["state"]``."""
DROP = "unlimcall.drop_connection"
"""Set in ``scope["state"]`` by a fault rule: the edge breaks the connection mid-response."""


def runtime(request: Request[Any, Any, Any]) -> Runtime:
    return runtime_of(request.scope)


def runtime_of(scope: Scope) -> Runtime:
    """The process's ``Runtime`` (set by the app's lifespan), from a request's scope."""
    # By item, not by attribute: ``State`` finds attributes only after a failed lookup.
    rt: Runtime = scope["litestar_app"].state["rt"]
    return rt


# -- errors ----------------------------------------------------------------------------


def envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = _encoder.encode({"error": code, "message": message})
    return Response(content=body, status_code=status, media_type=_JSON, headers=headers)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """The one exception handler: every error, raised anywhere, answered in the envelope."""
    if isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        # Litestar groups what a dependency's cleanup raised (a transaction's budget).
        return handle_exception(request, exc.exceptions[0])
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
        return envelope(status, code, detail)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return envelope(500, "internal_error", "Internal error; see the sandbox log.")


# -- bodies ----------------------------------------------------------------------------


def json_media(content_type: str) -> bool:
    """Whether a Content-Type header (or its absence: "") announces JSON."""
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        not media
        or media == _JSON
        or (media.startswith("application/") and media.endswith("+json"))
    )


def parse_json(content_type: str, body: bytes) -> Any:
    """A request body as JSON, or ``invalid_input`` for a wrong content type, bad UTF-8 or
    bad JSON. A missing Content-Type is accepted (curl ``-d`` users)."""
    if not json_media(content_type):
        raise InvalidInput("Content-Type must be application/json.")
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


async def read_json(request: Request[Any, Any, Any]) -> Any:
    return parse_json(request.headers.get("content-type", ""), await request.body())


async def read_struct(request: Request[Any, Any, Any], type_: type[T]) -> T:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidInput("Request body must be a JSON object.")
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc)) from exc


# -- the request's transaction -----------------------------------------------------------


@dataclass(kw_only=True)
class Tx(UnitOfWork):
    """A request's unit of work, with the process's ``Runtime`` for the handler (services
    take the unit of work and ``rt.deps``, never this)."""

    rt: Runtime


def transaction(rt: Runtime, budget: float | None = None) -> AbstractAsyncContextManager[Tx]:
    """A request's write transaction: committed when the block ends, rolled back when it
    raises; what waits for the commit runs after it: cache invalidations, and the queued
    jobs, handed to the job queue without waiting for Redis (the answer does not wait on
    it; ``unit.committed_soon``). Open for longer than ``budget`` seconds (default
    ``UNLIMCALL_WRITE_TX_BUDGET``; 0: none), it is rolled back and the request answered
    503."""
    return _Transaction(rt, rt.settings.write_tx_budget if budget is None else budget)


class _Transaction:
    """``transaction()``: the database's write, a ``Tx`` in it and the time budget around
    the block. (A class rather than a generator: every write request passes here.)"""

    __slots__ = ("_budget", "_rt", "_tx", "_write")

    def __init__(self, rt: Runtime, seconds: float) -> None:
        self._rt = rt
        self._budget = time_budget(seconds, "write transaction")

    async def __aenter__(self) -> Tx:
        self._write = self._rt.db.write()
        conn = await self._write.__aenter__()
        self._tx = Tx(conn=conn, rt=self._rt)
        self._budget.__enter__()
        return self._tx

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        try:
            self._budget.__exit__(exc_type, exc, tb)
        except BaseException as over:  # BudgetExceeded: the block is rolled back with it
            await self._write.__aexit__(type(over), over, over.__traceback__)
            raise
        await self._write.__aexit__(exc_type, exc, tb)
        if exc_type is None:
            committed_soon(self._tx, self._rt.jobs.submit)


TxDep = NamedDependency[Tx]
"""How a handler asks for the request's transaction."""


TX_BUDGET = "tx_budget"
"""A route option: its own write-transaction budget in seconds (0: none), for the rare
route whose work is bulk by nature (reset wipes every table)."""


async def provide_tx(request: Request[Any, Any, Any]) -> AsyncGenerator[Tx, None]:
    budget = request.route_handler.opt.get(TX_BUDGET)
    async with transaction(runtime(request), budget) as tx:
        yield tx


async def provide_body(request: Request[Any, Any, Any]) -> Any:
    """The JSON body, read before the write transaction opens (a slow upload must not hold
    the SQLite write lock)."""
    return await read_json(request)


async def provide_body_tx(
    request: Request[Any, Any, Any], payload: NamedDependency[Any]
) -> AsyncGenerator[Tx, None]:
    """``provide_tx``, opened once ``payload`` is read."""
    async for tx in provide_tx(request):
        yield tx


PrincipalDep = NamedDependency[Principal]
"""How a ``/v1`` handler asks for the caller the gate authenticated."""


def principal_of(scope: Scope) -> Principal:
    """The caller of a ``/v1`` operation, authenticated by the gate before its handler."""
    principal: Principal = scope["state"][PRINCIPAL]
    return principal


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return principal_of(request.scope)


# -- lean routes ------------------------------------------------------------------------

LeanHandler = Callable[[HTTPScope, Receive], Awaitable[bytes | None]]
"""``fn(scope, receive)`` → the JSON body of a 200, or None for a 204 without one."""


def lean(method: str, path: str, **opt: Any) -> Callable[[LeanHandler], ASGIRouteHandler]:
    """Register ``fn`` as the one handler of ``method path``: a Litestar ``@asgi`` route,
    routed by Litestar and run inside the same middleware as every other route (the app's,
    and its router's), that skips Litestar's request object, dependency injection and
    response machinery. Another method is answered as Litestar answers it elsewhere (405
    with ``Allow``; OPTIONS 204); ``opt`` are the route's options, as for any handler."""
    allow = ", ".join(sorted({method, "OPTIONS"}))
    allow_header = [(b"allow", allow.encode())]

    def register(fn: LeanHandler) -> ASGIRouteHandler:
        async def handle(scope: HTTPScope, receive: Receive, send: Send) -> None:
            if scope["method"] == method:
                body = await fn(scope, receive)
                if body is None:
                    await send({"type": "http.response.start", "status": 204, "headers": []})
                    body = b""
                else:
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
            elif scope["method"] == "OPTIONS":
                await send({"type": "http.response.start", "status": 204, "headers": allow_header})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                raise LitestarMethodNotAllowed(headers={"allow": allow})

        handle.__name__ = handle.__qualname__ = fn.__name__
        handle.__doc__ = fn.__doc__
        # copy_scope=False: the edge reads what routing writes into the scope (the route).
        return _LeanRoute(path, opt={**opt, "method": method}, copy_scope=False)(handle)

    return register


class _LeanRoute(ASGIRouteHandler):
    """An ``@asgi`` route handler whose exception handlers are resolved once: Litestar 2.25
    walks the handler's layers for them on every request (its docstring says memoized),
    and they never change once the app is built."""

    _exception_handlers: ExceptionHandlersMap | None = None

    def resolve_exception_handlers(self) -> ExceptionHandlersMap:
        if self._exception_handlers is None:
            self._exception_handlers = super().resolve_exception_handlers()
        return self._exception_handlers


def header_of(scope: Scope, name: bytes) -> str:
    """The first ``name`` header (lower-case bytes), or ""."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


@lru_cache(maxsize=1024)
def _query(raw: bytes) -> tuple[tuple[str, str], ...]:
    # Exactly Litestar's reading of a query string (``Request.query_params``).
    return tuple(parse_qsl(raw.decode("latin-1"), keep_blank_values=True, separator="&"))


def query_param(scope: Scope, name: str) -> str | None:
    """The one value of query parameter ``name``; ``invalid_input`` when it is repeated."""
    raw: bytes = scope["query_string"]
    if not raw:
        return None
    values = [v for k, v in _query(raw) if k == name]
    if len(values) > 1:
        raise InvalidInput(f"Query parameter {name!r} given more than once.")
    return values[0] if values else None


async def read_body(receive: Receive) -> bytes:
    """The whole request body (its size is limited by the edge, for every route alike)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise InternalServerException("client disconnected prematurely")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


# -- the edge ----------------------------------------------------------------------------

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_BODILESS = frozenset({"GET", "HEAD"})


class SandboxTime(Protocol):
    """The sandbox time every response carries in ``X-Unlimcall-Sandbox-Time``."""

    def stale(self) -> bool:
        """Whether this process's copy of the shared clock anchor is due a re-read."""

    async def refresh(self) -> None:
        """Re-read the shared clock anchor."""

    def header(self) -> bytes | None:
        """The header value now (RFC 3339); None before start-up."""


SANDBOX_TIME_HEADER = b"x-unlimcall-sandbox-time"


class EdgeMiddleware:
    """What every request passes through, before routing and whatever answers it:

    - an ``X-Request-Id`` on every response (the caller's, when it is sane), and one JSON
      log line and one metrics sample per request with the same id, route and status;
    - HEAD: routed as GET, answered with GET's status and headers and no body (``Allow``
      lists HEAD wherever it lists GET);
    - the whole body read before routing, with the size limit (413 ``payload_too_large``;
      on ``/v1``, whose operations list no 413, 400 ``invalid_input``) and a read deadline
      (``server.bodies``);
    - a dropped connection when a fault rule asked for one;
    - CORS (Litestar's) for every request with an Origin header;
    - ``X-Unlimcall-Sandbox-Time`` on every response (``sandbox_time``).
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: RequestMetrics,
        *,
        max_body: int,
        body_timeout: float = 10.0,
        enabled: bool = True,
        under_cors: ASGIApp | None = None,
        sandbox_time: SandboxTime | None = None,
    ) -> None:
        self.app = app
        self.sandbox_time = sandbox_time
        # Litestar's CORS middleware (the outer layer of ``app``) acts only on requests with
        # an Origin header, yet parses every request's headers to find out: the others go
        # straight to the layer under it.
        self.under_cors = app if under_cors is None else under_cors
        self.enabled = enabled
        self.metrics = metrics
        self.max_body = max_body
        self.body_timeout = body_timeout
        # Request ids: a random per-process prefix and a counter (uuid4 per request showed
        # up in profiles); unique across processes and restarts, 32 hex characters.
        self._prefix = uuid.uuid4().hex[:16]
        self._counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        request_id: str | None = None
        app = self.under_cors
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if request_id is None:  # the first one counts, when it is sane
                    candidate = value.decode("latin-1")
                    request_id = candidate if _SAFE_ID.match(candidate) else ""
            elif name == b"origin":
                app = self.app
        if not request_id:
            request_id = f"{self._prefix}{next(self._counter):016x}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        head = method == "HEAD"
        # A copy for HEAD: the server keeps its own scope's HEAD and leaves the body out.
        inner: Scope = {**scope, "method": "GET"} if head else scope
        status = 500
        header = (b"x-request-id", request_id.encode())
        dropped = False

        finished = False
        clock = self.sandbox_time
        if clock is not None and clock.stale():
            await clock.refresh()

        async def send_wrapper(message: Message) -> None:
            nonlocal status, dropped, finished
            if state.get(DROP):
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
                headers = [*message.get("headers", ()), header]
                stamp = None if clock is None else clock.header()
                if stamp is not None:
                    headers.append((SANDBOX_TIME_HEADER, stamp))
                if status in (204, 405):
                    headers = _allow_head(headers)
                message["headers"] = headers
            elif head and message["type"] == "http.response.body":
                # The response ends with its first body message: a streamed GET (the
                # dashboard's event stream) then sees the client go, as if it had left.
                if finished:
                    return
                finished = True
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            # Nothing reads the body of a GET (or of a HEAD, routed as one). Any other body
            # is read whole here, before routing: no handler, dependency or transaction
            # ever waits on a client's upload (``server.bodies``).
            if method not in _BODILESS:
                try:
                    receive = await buffer_body(
                        scope, receive, limit=self.max_body, deadline=self.body_timeout
                    )
                except ClientGone:
                    status = 499  # nobody to answer
                    return
                except ApiError as exc:
                    await _refuse(send_wrapper, exc)
                    return
            await app(inner, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = str(inner.get("path_template") or "")  # the matched route template
            self.metrics.observe(method, route, status, elapsed)
            if self.enabled:
                access_log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": method,
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )


async def _refuse(send: Send, exc: ApiError) -> None:
    """Answer ``exc`` in the envelope from the edge (the body was not read: close)."""
    body = _encoder.encode({"error": exc.code, "message": exc.message})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((k.lower().encode(), v.encode("latin-1")) for k, v in (exc.headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _allow_head(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``Allow`` with HEAD wherever GET is allowed, in one order everywhere (Litestar's
    varies from process to process)."""
    out = []
    for name, value in headers:
        if name.lower() == b"allow":
            methods = {m.strip() for m in value.decode("latin-1").split(",") if m.strip()}
            if "GET" in methods:
                methods.add("HEAD")
            value = ", ".join(sorted(methods)).encode()
        out.append((name, value))
    return out
