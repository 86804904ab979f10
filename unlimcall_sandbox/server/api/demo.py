"""``/_sandbox/demo``: start, stop and watch demo traffic (``services.demo``), behind the
admin token (or the dashboard's session)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from unlimcall_sandbox.server.api.sandbox import admin_guard
from unlimcall_sandbox.server.http import TxDep, provide_tx, read_struct, runtime
from unlimcall_sandbox.server.services import demo as demo_service
from unlimcall_sandbox.server.settings import Settings

Req = Request[Any, Any, Any]
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def self_base(request: Req, settings: Settings) -> str:
    """Where the worker reaches this sandbox's inbox: ``UNLIMCALL_PUBLIC_URL`` when set,
    else the address and port this request came in on (loopback for a wildcard bind)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    server = request.scope.get("server")
    if server and server[1]:
        host, port = str(server[0]), int(server[1])
    else:
        host, port = settings.host, settings.port
    host = _WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@post("/demo", status_code=HTTP_201_CREATED)
async def start_demo(request: Req, tx: TxDep) -> dict[str, Any]:
    """Start demo traffic (a demo account of its own unless ``customerId`` is given)."""
    data = await read_struct(request, demo_service.DemoStart)
    return await demo_service.start(tx, tx.rt.deps, data, self_base(request, tx.rt.settings))


@post("/demo/stop", status_code=HTTP_200_OK)
async def stop_demo(tx: TxDep) -> dict[str, Any]:
    return await demo_service.stop(tx, tx.rt.deps)


@get("/demo")
async def demo_status(request: Req) -> dict[str, Any]:
    """The latest run (``{"demo": null}`` before the first). Reading it also restarts a
    run whose tick job was lost."""
    rt = runtime(request)
    async with rt.db.read() as conn:
        answer = await demo_service.status(conn, rt.clock.now())
        kicks = await demo_service.overdue(conn, rt.clock.real_now())
    await rt.jobs.enqueue(kicks)
    return answer


demo_router = Router(
    path="/_sandbox",
    guards=[admin_guard],
    dependencies={"tx": Provide(provide_tx)},
    route_handlers=[start_demo, stop_demo, demo_status],
)
