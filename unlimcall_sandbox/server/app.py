"""The application factory: ``create_app(settings)`` builds everything, nothing at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar, Request, get
from litestar.config.cors import CORSConfig
from litestar.middleware import AbstractMiddleware
from sqlalchemy import text

from unlimcall_sandbox.resources import CONTRACT
from unlimcall_sandbox.server.api.dashboard import dashboard_router
from unlimcall_sandbox.server.api.docs import Documents, docs_router
from unlimcall_sandbox.server.api.inbox import inbox_router
from unlimcall_sandbox.server.api.oauth import metadata, token
from unlimcall_sandbox.server.api.sandbox import sandbox_router
from unlimcall_sandbox.server.api.v1 import v1_router
from unlimcall_sandbox.server.clock import SYNC_TTL, iso
from unlimcall_sandbox.server.errors import ServiceUnavailable
from unlimcall_sandbox.server.http import EdgeMiddleware, handle_exception, runtime
from unlimcall_sandbox.server.metrics import Metrics
from unlimcall_sandbox.server.metrics import render as render_metrics
from unlimcall_sandbox.server.runtime import Runtime
from unlimcall_sandbox.server.services import clock as clock_service
from unlimcall_sandbox.server.settings import Settings
from unlimcall_sandbox.server.structs import Health, Readiness

log = logging.getLogger("unlimcall")


# Something to run beside the API for the app's lifetime (the in-process worker).
Background = Callable[[Runtime], AbstractAsyncContextManager[Any]]


@get("/healthz", sync_to_thread=False)
def healthz() -> Health:
    return Health(status="ok")


@get("/readyz")
async def readyz(request: Request[Any, Any, Any]) -> Readiness:
    rt = runtime(request)
    try:
        async with rt.db.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable(f"database unreachable: {type(exc).__name__}") from exc
    try:
        await rt.redis.ping()
    except Exception as exc:
        raise ServiceUnavailable(f"redis unreachable: {type(exc).__name__}") from exc
    return Readiness(status="ready", database="ok", redis="ok")


@get("/metrics", media_type="text/plain; version=0.0.4")
async def metrics(request: Request[Any, Any, Any]) -> str:
    return await render_metrics(runtime(request), request.app.state.metrics)


class _SandboxTime:
    """``X-Unlimcall-Sandbox-Time`` for the edge: this process's clock, its anchor re-read
    from the database at most once per ``SYNC_TTL`` (another process's advance), the value
    rendered at most once per sandbox second."""

    __slots__ = ("_last", "rt")

    def __init__(self) -> None:
        self.rt: Runtime | None = None  # set by the lifespan while it runs
        self._last: tuple[int, bytes] = (-1, b"")

    def _runtime(self) -> Runtime | None:
        return self.rt

    def stale(self) -> bool:
        rt = self._runtime()
        return rt is not None and rt.clock.real_now() - rt.clock.synced_at >= SYNC_TTL

    async def refresh(self) -> None:
        rt = self._runtime()
        if rt is None:
            return
        try:
            await clock_service.sync(rt.db, rt.clock)
        except Exception:  # the response must not fail for the header's sake
            log.warning("clock anchor re-read failed", exc_info=True)
            rt.clock.synced_at = rt.clock.real_now()

    def header(self) -> bytes | None:
        rt = self._runtime()
        if rt is None:
            return None
        second = int(rt.clock.now())
        if self._last[0] != second:
            self._last = (second, iso(second).encode())
        return self._last[1]


def create_app(settings: Settings, background: Sequence[Background] = ()) -> Litestar:
    settings = settings.with_admin_token()
    contract_bytes = CONTRACT.read_bytes()

    sandbox_time = _SandboxTime()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt = await Runtime.start(settings)
        app.state.rt = sandbox_time.rt = rt
        app.state.metrics.start()
        try:
            async with AsyncExitStack() as stack:
                for factory in background:
                    await stack.enter_async_context(factory(rt))
                yield
        finally:
            sandbox_time.rt = None
            await app.state.metrics.stop()
            await rt.close()

    app = Litestar(
        route_handlers=[
            v1_router,
            inbox_router,
            dashboard_router,
            sandbox_router,
            docs_router,
            token,
            metadata,
            healthz,
            readyz,
            metrics,
        ],
        lifespan=[lifespan],
        exception_handlers={Exception: handle_exception},
        # The edge enforces settings.max_body_bytes on every route, lean ones included.
        request_max_body_size=None,
        openapi_config=None,
        cors_config=CORSConfig(allow_origins=["*"], allow_headers=["*"]),
        debug=False,
        logging_config=None,
    )
    # Outside Litestar's router, so that 404s and 405s get a request id and a log line too.
    app.state.metrics = counted = Metrics()
    app.state.request_metrics = counted.requests
    app.state.loop_lag = counted.lag
    cors = app.asgi_handler  # the outer layer Litestar builds: CORS (from cors_config)
    assert isinstance(cors, AbstractMiddleware)
    app.asgi_handler = EdgeMiddleware(
        cors,
        app.state.request_metrics,
        max_body=settings.max_body_bytes,
        body_timeout=settings.body_read_timeout,
        enabled=settings.log_requests,
        under_cors=cors.app,
        sandbox_time=sandbox_time,
    )
    app.state.settings = settings
    app.state.contract_bytes = contract_bytes
    app.state.documents = Documents(contract_bytes)
    return app
