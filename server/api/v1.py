"""The contract's operations under ``/v1``."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, delete, get, post
from litestar.di import Provide
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT
from sqlalchemy import select

from server.db.engine import read
from server.db.tables import accounts
from server.errors import AccountNotProvisioned, BalanceUnavailable, InvalidInput
from server.http import TxDep, provide_tx, read_json, runtime
from server.services import accounts as account_service
from server.services import calls as call_service
from server.services import cdrs as cdr_service
from server.services import hooks as hook_service
from server.structs import AgentList, Balance, CallQueued, CdrList, HookCreated, Me

Req = Request[Any, Any, Any]


async def _auth(request: Req, scope: str | None) -> Any:
    return await runtime(request).verifier.authenticate(request.headers.get("authorization"), scope)


def _single(request: Req, name: str) -> str | None:
    values = request.query_params.getall(name, [])
    if len(values) > 1:
        raise InvalidInput(f"Query parameter {name!r} given more than once.")
    return values[0] if values else None


@get("/me")
async def get_me(request: Req) -> Me:
    p = await _auth(request, None)
    return Me(customerId=str(p.account_id), companyName=p.company_name, primaryContactEmail=p.email)


_BALANCE = select(
    accounts.c.balance_e4,
    accounts.c.currency,
    accounts.c.account_type,
    accounts.c.credit_limit_e4,
    accounts.c.balance_upstream,
)


@get("/balance")
async def get_balance(request: Req) -> Balance:
    p = await _auth(request, "read:balance")
    async with read(runtime(request).engine) as conn:
        row = (await conn.execute(_BALANCE.where(accounts.c.id == p.account_id))).one()
    if row.balance_upstream == "failing":
        raise BalanceUnavailable()
    return Balance(
        balance=account_service.from_e4(row.balance_e4),
        currency=row.currency,
        accountType=row.account_type,
        creditLimit=None
        if row.credit_limit_e4 is None
        else account_service.from_e4(row.credit_limit_e4),
        blocked=account_service.is_blocked(row),
        stale=row.balance_upstream == "stale",
    )


@get("/cdrs")
async def list_cdrs(request: Req) -> CdrList:
    p = await _auth(request, "read:cdrs")
    rt = runtime(request)
    start, till, limit = cdr_service.parse_window(
        _single(request, "from"),
        _single(request, "till"),
        _single(request, "limit"),
        rt.clock.now(),
    )
    async with read(rt.engine) as conn:
        provisioned = (
            await conn.execute(select(accounts.c.provisioned).where(accounts.c.id == p.account_id))
        ).scalar_one()
        if not provisioned:
            raise AccountNotProvisioned()
        rows = await cdr_service.list_window(conn, p.account_id, start, till, limit)
    return CdrList(count=len(rows), calls=rows)


@get("/agents")
async def list_agents(request: Req) -> AgentList:
    p = await _auth(request, "read:agents")
    async with read(runtime(request).engine) as conn:
        rows = await account_service.list_agents(conn, p.account_id)
    return AgentList(count=len(rows), agents=rows)


@post("/calls", status_code=HTTP_200_OK, dependencies={"tx": Provide(provide_tx)})
async def originate_call(request: Req, tx: TxDep) -> CallQueued:
    p = await _auth(request, "write:calls")
    body = await read_json(request)
    return await call_service.originate(tx, p.account_id, body)


@post("/hooks", status_code=HTTP_200_OK, dependencies={"tx": Provide(provide_tx)})
async def create_hook(request: Req, tx: TxDep) -> HookCreated:
    p = await _auth(request, "write:hooks")
    body = await read_json(request)
    return await hook_service.create(tx, p.account_id, body)


@delete(
    "/hooks/{hook_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    dependencies={"tx": Provide(provide_tx)},
)
async def delete_hook(request: Req, tx: TxDep, hook_id: FromPath[str]) -> Response[None]:
    p = await _auth(request, "write:hooks")
    await hook_service.disable(tx, p.account_id, hook_id)
    return Response(content=None, status_code=HTTP_204_NO_CONTENT)


@get("/openapi.json", media_type="application/json")
async def contract(request: Req) -> Response[bytes]:
    return Response(content=request.app.state.contract_bytes, media_type="application/json")


v1_router = Router(
    path="/v1",
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
