"""What acts on a /v1 request before authentication and before any side effect: a
``Prefer`` header (``server.prefer``), then the fault rules (``server.services.faults``):
an injected error, added latency, or a dropped connection (the response starts, then the
connection closes mid-body)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response

from unlimcall_sandbox.server.errors import ApiError
from unlimcall_sandbox.server.http import envelope, runtime
from unlimcall_sandbox.server.prefer import InvalidPrefer, parse, resolve

DROP = "drop_connection"


async def apply_api_faults(
    request: Request[Any, Any, Any], operation: str
) -> Response[bytes] | None:
    rt = runtime(request)
    account_id = None
    if await rt.faults.needs_account("api", operation):
        try:
            principal = await rt.verifier.authenticate(request.headers.get("authorization"), None)
            account_id = principal.account_id
        except ApiError:
            account_id = None
    for rule in await rt.faults.fire("api", operation, account_id):
        if rule.action == "latency":
            await asyncio.sleep(rt.faults.latency_of(rule))
        elif rule.action == "error":
            status, code = rule.params["status"], rule.params["error"]
            headers = (
                {"WWW-Authenticate": 'Bearer realm="unlimcall", error="invalid_token"'}
                if status == 401
                else None
            )
            return envelope(status, code, f"Injected by fault rule {rule.id}.", headers)
        elif rule.action == "drop":
            request.scope.setdefault("state", {})[DROP] = True
            return envelope(500, "connection_dropped", "never sent")
    return None


async def forced_answer(request: Request[Any, Any, Any], operation: str) -> Response[bytes] | None:
    header = request.headers.get("prefer")
    if not header:
        return None
    try:
        forced = resolve(operation, *parse(header))
    except InvalidPrefer as exc:
        return envelope(exc.status, exc.code, exc.message)
    if forced is None:
        return None
    return envelope(forced.status, forced.code, forced.message, forced.headers)
