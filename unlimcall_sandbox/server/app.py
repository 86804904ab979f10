"""The application factory: ``create_app(settings)`` builds everything, nothing at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar, Request, get
from litestar.config.cors import CORSConfig
from sqlalchemy import text

from unlimcall_sandbox.resources import CONTRACT
from unlimcall_sandbox.server.api.dashboard import dashboard_router
from unlimcall_sandbox.server.api.docs import Documents, docs_router
from unlimcall_sandbox.server.api.inbox import inbox_router
from unlimcall_sandbox.server.api.oauth import metadata, token
from unlimcall_sandbox.server.api.sandbox import sandbox_router
from unlimcall_sandbox.server.api.v1 import v1_router
from unlimcall_sandbox.server.db.engine import read
from unlimcall_sandbox.server.errors import ServiceUnavailable
from unlimcall_sandbox.server.fastpath import FastPath
from unlimcall_sandbox.server.http import RequestLogMiddleware, handle_exception, runtime
from unlimcall_sandbox.server.metrics import RequestMetrics
from unlimcall_sandbox.server.metrics import render as render_metrics
from unlimcall_sandbox.server.runtime import Runtime
from unlimcall_sandbox.server.settings import Settings

log = logging.getLogger("unlimcall")


# Something to run beside the API for the app's lifetime (the in-process worker).
Background = Callable[[Runtime], AbstractAsyncContextManager[Any]]


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz")
async def readyz(request: Request[Any, Any, Any]) -> dict[str, str]:
    rt = runtime(request)
    try:
        async with read(rt.engine) as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable(f"database unreachable: {type(exc).__name__}") from exc
    try:
        await rt.redis.ping()
    except Exception as exc:
        raise ServiceUnavailable(f"redis unreachable: {type(exc).__name__}") from exc
    return {"status": "ready", "database": "ok", "redis": "ok"}


@get("/metrics", media_type="text/plain; version=0.0.4")
async def metrics(request: Request[Any, Any, Any]) -> str:
    return await render_metrics(runtime(request), request.app.state.request_metrics)


def create_app(settings: Settings, background: Sequence[Background] = ()) -> Litestar:
    settings = settings.with_admin_token()
    contract_bytes = CONTRACT.read_bytes()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt = await Runtime.start(settings)
        app.state.rt = rt
        try:
            async with AsyncExitStack() as stack:
                for factory in background:
                    await stack.enter_async_context(factory(rt))
                yield
        finally:
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
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        cors_config=CORSConfig(allow_origins=["*"], allow_headers=["*"]),
        debug=False,
        logging_config=None,
    )
    # Outside Litestar's router, so that 404s and 405s get a request id and a log line too.
    app.state.request_metrics = RequestMetrics()
    app.asgi_handler = RequestLogMiddleware(
        app.asgi_handler,
        app.state.request_metrics,
        enabled=settings.log_requests,
        fast=FastPath(app, settings.max_body_bytes),
    )
    app.state.settings = settings
    app.state.contract_bytes = contract_bytes
    app.state.documents = Documents(contract_bytes)
    return app
