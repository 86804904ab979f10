"""The contract's operations under ``/v1``."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT
from sqlalchemy import bindparam, select

from unlimcall_sandbox.server.api.docs import contract_response
from unlimcall_sandbox.server.api.forcing import apply_api_faults, forced_answer
from unlimcall_sandbox.server.auth import Principal
from unlimcall_sandbox.server.db.tables import accounts
from unlimcall_sandbox.server.errors import AccountNotProvisioned, BalanceUnavailable, InvalidInput
from unlimcall_sandbox.server.http import (
    PrincipalDep,
    TxDep,
    provide_authed_tx,
    provide_body,
    provide_body_tx,
    provide_principal,
    runtime,
)
from unlimcall_sandbox.server.runtime import Runtime
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import calls as call_service
from unlimcall_sandbox.server.services import cdrs as cdr_service
from unlimcall_sandbox.server.services import hooks as hook_service
from unlimcall_sandbox.server.structs import AgentList, Balance, CallQueued, HookCreated, Me

Req = Request[Any, Any, Any]


def _single(request: Req, name: str) -> str | None:
    values = request.query_params.getall(name, [])
    if len(values) > 1:
        raise InvalidInput(f"Query parameter {name!r} given more than once.")
    return values[0] if values else None


def me_of(principal: Principal) -> Me:
    return Me(
        customerId=str(principal.account_id),
        companyName=principal.company_name,
        primaryContactEmail=principal.email,
    )


_BALANCE = select(
    accounts.c.balance_e4,
    accounts.c.currency,
    accounts.c.account_type,
    accounts.c.credit_limit_e4,
    accounts.c.balance_upstream,
).where(accounts.c.id == bindparam("account_id"))
_PROVISIONED = select(accounts.c.provisioned).where(accounts.c.id == bindparam("account_id"))


async def balance_of(rt: Runtime, principal: Principal) -> Balance:
    row = await rt.reads.one_or_none(_BALANCE, {"account_id": principal.account_id})
    assert row is not None  # the token's account exists: it was just verified
    balance_e4, currency, account_type, credit_limit_e4, upstream = row
    if upstream == "failing":
        raise BalanceUnavailable()
    return Balance(
        balance=account_service.from_e4(balance_e4),
        currency=currency,
        accountType=account_type,
        creditLimit=None if credit_limit_e4 is None else account_service.from_e4(credit_limit_e4),
        blocked=account_service.blocked(account_type, balance_e4, credit_limit_e4),
        stale=upstream == "stale",
    )


async def cdrs_of(
    rt: Runtime,
    principal: Principal,
    from_raw: str | None,
    till_raw: str | None,
    limit_raw: str | None,
) -> bytes:
    """The ``CdrList`` body, already encoded (joined from the rows' stored JSON)."""
    start, till, limit = cdr_service.parse_window(from_raw, till_raw, limit_raw, rt.clock.now())
    row = await rt.reads.one_or_none(_PROVISIONED, {"account_id": principal.account_id})
    if row is None or not row[0]:
        raise AccountNotProvisioned()
    return await cdr_service.window_body(rt.reads, principal.account_id, start, till, limit)


# The three handlers below are the slow path of their routes: ``server.fastpath`` answers
# their ordinary requests before Litestar sees them, with these same functions.


@get("/me", opt={"operation": "getMe"})
async def get_me(principal: PrincipalDep) -> Me:
    return me_of(principal)


@get("/balance", opt={"scope": "read:balance", "operation": "getBalance"})
async def get_balance(request: Req, principal: PrincipalDep) -> Balance:
    return await balance_of(runtime(request), principal)


@get("/cdrs", opt={"scope": "read:cdrs", "operation": "listCdrs"})
async def list_cdrs(request: Req, principal: PrincipalDep) -> Response[bytes]:
    body = await cdrs_of(
        runtime(request),
        principal,
        _single(request, "from"),
        _single(request, "till"),
        _single(request, "limit"),
    )
    return Response(content=body, media_type="application/json")


@get("/agents", opt={"scope": "read:agents", "operation": "listAgents"})
async def list_agents(request: Req, principal: PrincipalDep) -> AgentList:
    rows = await account_service.list_agents(runtime(request).reads, principal.account_id)
    return AgentList(count=len(rows), agents=rows)


async def before_request(request: Req) -> Response[bytes] | None:
    """Before auth and before any side effect: a ``Prefer`` header, then fault rules."""
    operation: str | None = request.route_handler.opt.get("operation")
    if operation is None:  # not a contract operation (the contract file itself)
        return None
    forced = await forced_answer(request, operation)
    if forced is not None:
        return forced
    return await apply_api_faults(request, operation)


_WRITE = {
    "payload": Provide(provide_body),
    "tx": Provide(provide_body_tx),
}


@post(
    "/calls",
    status_code=HTTP_200_OK,
    opt={"scope": "write:calls", "operation": "originateCall"},
    dependencies=_WRITE,
)
async def originate_call(
    principal: PrincipalDep, payload: NamedDependency[Any], tx: TxDep
) -> CallQueued:
    return await call_service.originate(tx, principal.account_id, payload)


@post(
    "/hooks",
    status_code=HTTP_200_OK,
    opt={"scope": "write:hooks", "operation": "createHook"},
    dependencies=_WRITE,
)
async def create_hook(
    principal: PrincipalDep, payload: NamedDependency[Any], tx: TxDep
) -> HookCreated:
    return await hook_service.create(tx, principal.account_id, payload)


@delete(
    "/hooks/{hook_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    opt={"scope": "write:hooks", "operation": "deleteHook"},
    dependencies={"tx": Provide(provide_authed_tx)},
)
async def delete_hook(principal: PrincipalDep, tx: TxDep, hook_id: FromPath[str]) -> Response[None]:
    await hook_service.disable(tx, principal.account_id, hook_id)
    return Response(content=None, status_code=HTTP_204_NO_CONTENT)


@get("/openapi.json", media_type="application/json")
async def contract(request: Req) -> Response[bytes]:
    """The contract with ``servers`` set to this sandbox (``api.docs``)."""
    return contract_response(request)


v1_router = Router(
    path="/v1",
    before_request=before_request,
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
