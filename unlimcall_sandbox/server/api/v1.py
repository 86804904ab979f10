"""The contract's operations under ``/v1``: one handler each, every one behind the gate
(``api.gate``: Prefer, fault rules, authentication and the operation's scope).

The four that integrators poll hardest (``/me``, ``/balance``, ``/cdrs``, ``POST /calls``)
are lean routes (``http.lean``): same router, same middleware, same errors, without the
per-request cost of Litestar's request object, dependency injection and response
machinery. The others are ordinary handlers (``DELETE /hooks/{id}`` has to be: Litestar
2.25 routes no path parameters to ``@asgi`` handlers).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT
from litestar.types import HTTPScope, Receive

from unlimcall_sandbox.server.api.docs import contract_response
from unlimcall_sandbox.server.api.gate import Gate
from unlimcall_sandbox.server.http import (
    PrincipalDep,
    TxDep,
    header_of,
    lean,
    parse_json,
    principal_of,
    provide_body,
    provide_body_tx,
    provide_principal,
    provide_tx,
    query_param,
    read_body,
    runtime,
    runtime_of,
    transaction,
)
from unlimcall_sandbox.server.services import calls as call_service
from unlimcall_sandbox.server.services import hooks as hook_service
from unlimcall_sandbox.server.services import reads
from unlimcall_sandbox.server.structs import AgentList, HookCreated

Req = Request[Any, Any, Any]
_encode = msgspec.json.Encoder().encode


@lean("GET", "/me", operation="getMe")
async def get_me(scope: HTTPScope, receive: Receive) -> bytes:
    return _encode(reads.me_of(principal_of(scope)))


@lean("GET", "/balance", operation="getBalance", scope="read:balance")
async def get_balance(scope: HTTPScope, receive: Receive) -> bytes:
    account_id = principal_of(scope).account_id
    return _encode(await reads.balance_of(runtime_of(scope).reads, account_id))


@lean("GET", "/cdrs", operation="listCdrs", scope="read:cdrs")
async def list_cdrs(scope: HTTPScope, receive: Receive) -> bytes:
    rt = runtime_of(scope)
    return await reads.cdrs_of(
        rt.reads,
        principal_of(scope).account_id,
        query_param(scope, "from"),
        query_param(scope, "till"),
        query_param(scope, "limit"),
        rt.clock.now(),
    )


@lean("POST", "/calls", operation="originateCall", scope="write:calls")
async def originate_call(scope: HTTPScope, receive: Receive) -> bytes:
    # The whole body before the write transaction opens: a slow upload must not hold the
    # SQLite write lock.
    payload = parse_json(header_of(scope, b"content-type"), await read_body(receive))
    async with transaction(runtime_of(scope)) as tx:
        queued = await call_service.originate(
            tx, tx.rt.deps, principal_of(scope).account_id, payload
        )
    return _encode(queued)


@get("/agents", opt={"scope": "read:agents", "operation": "listAgents"})
async def list_agents(request: Req, principal: PrincipalDep) -> AgentList:
    return await reads.agents_of(runtime(request).reads, principal.account_id)


@post(
    "/hooks",
    status_code=HTTP_200_OK,
    opt={"scope": "write:hooks", "operation": "createHook"},
    dependencies={"payload": Provide(provide_body), "tx": Provide(provide_body_tx)},
)
async def create_hook(
    principal: PrincipalDep, payload: NamedDependency[Any], tx: TxDep
) -> HookCreated:
    return await hook_service.create(tx, tx.rt.deps, principal.account_id, payload)


@delete(
    "/hooks/{hook_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    opt={"scope": "write:hooks", "operation": "deleteHook"},
    dependencies={"tx": Provide(provide_tx)},
)
async def delete_hook(principal: PrincipalDep, tx: TxDep, hook_id: FromPath[str]) -> Response[None]:
    await hook_service.disable(tx, tx.rt.deps, principal.account_id, hook_id)
    return Response(content=None, status_code=HTTP_204_NO_CONTENT)


@get("/openapi.json", media_type="application/json")
async def contract(request: Req) -> Response[bytes]:
    """The contract with ``servers`` set to this sandbox (``api.docs``)."""
    return contract_response(request)


v1_router = Router(
    path="/v1",
    middleware=[Gate],
    dependencies={"principal": Provide(provide_principal)},
    route_handlers=[
        get_me,
        get_balance,
        list_cdrs,
        list_agents,
        originate_call,
        create_hook,
        delete_hook,
        contract,
    ],
)
