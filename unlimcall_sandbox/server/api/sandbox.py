"""The sandbox-only control plane under ``/_sandbox``, behind the admin token."""

from __future__ import annotations

import hmac
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from litestar import Request, Router, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from unlimcall_sandbox.server import credentials, demo_data
from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.errors import InvalidInput, Unauthorized
from unlimcall_sandbox.server.http import (
    TX_BUDGET,
    Tx,
    TxDep,
    provide_tx,
    read_json,
    read_struct,
    runtime,
    runtime_of,
)
from unlimcall_sandbox.server.ids import next_id
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import bulk as bulk_service
from unlimcall_sandbox.server.services import calls as call_service
from unlimcall_sandbox.server.services import cdrs as cdr_service
from unlimcall_sandbox.server.services import clock as clock_service
from unlimcall_sandbox.server.services import dashboard as dashboard_service
from unlimcall_sandbox.server.services import dashboard_session
from unlimcall_sandbox.server.services import deliveries as delivery_service
from unlimcall_sandbox.server.services import events as event_service
from unlimcall_sandbox.server.services import faults as fault_service
from unlimcall_sandbox.server.services import hooks as hook_service
from unlimcall_sandbox.server.services import tokens as token_service
from unlimcall_sandbox.server.settings import ALL_SCOPES
from unlimcall_sandbox.server.structs import (
    AccountCreate,
    AccountList,
    AccountPatch,
    AccountView,
    AgentCreate,
    AgentView,
    BulkJobView,
    CallQueued,
    CallView,
    CdrGenerate,
    ClockAdvanced,
    ClockView,
    DeliveryList,
    DeliveryView,
    FastForwarded,
    FaultDeleted,
    FaultList,
    FaultRule,
    FaultsDeleted,
    OAuthClientCreate,
    OAuthClientCreated,
    Redelivery,
    ResetDone,
    TokenCreate,
    TokenCreated,
    TokenRevoked,
)

Req = Request[Any, Any, Any]
_ADMIN_REALM = 'Bearer realm="unlimcall-sandbox"'
# The most one advance may move the clock (a century of sandbox time).
MAX_ADVANCE_SEC = 100 * 366 * 86400


async def admin_guard(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    rt = runtime_of(connection.scope)
    # The session cookie (its expiry is wall time, from the one clock).
    if await dashboard_session.admitted(connection, rt.db, rt.settings, rt.clock.real_now()):
        return
    expected = rt.settings.admin_token or ""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if (
        not expected
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(token.strip().encode(), expected.encode())
    ):
        raise Unauthorized(
            "The control plane needs Authorization: Bearer $UNLIMCALL_ADMIN_TOKEN.",
            headers={"WWW-Authenticate": _ADMIN_REALM},
        )


def _customer(raw: str) -> int:
    return account_service.parse_customer_id(raw)


@post("/accounts", status_code=HTTP_201_CREATED)
async def create_account(request: Req, tx: TxDep) -> AccountView:
    data = await read_struct(request, AccountCreate)
    row = await account_service.create(tx.conn, data, tx.rt.clock.now())
    return account_service.account_view(row)


@get("/accounts")
async def list_accounts(request: Req) -> AccountList:
    async with runtime(request).db.read() as conn:
        items = [account_service.account_view(row) for row in await account_service.every(conn)]
    return AccountList(count=len(items), accounts=items)


@get("/accounts/{customer_id:str}/overview")
async def account_overview(request: Req, customer_id: FromPath[str]) -> dict[str, Any]:
    """Everything the dashboard shows for one account."""
    rt = runtime(request)
    q = request.query_params
    async with rt.db.read() as conn:
        return await dashboard_service.overview(
            conn,
            rt.reads,
            _customer(customer_id),
            rt.clock.now(),
            q.get("disposition") or None,
            q.get("country") or None,
        )


@get("/accounts/{customer_id:str}")
async def get_account(request: Req, customer_id: FromPath[str]) -> AccountView:
    async with runtime(request).db.read() as conn:
        row = await account_service.get(conn, _customer(customer_id))
    return account_service.account_view(row)


@patch("/accounts/{customer_id:str}")
async def patch_account(request: Req, tx: TxDep, customer_id: FromPath[str]) -> AccountView:
    data = await read_struct(request, AccountPatch)
    account_id = _customer(customer_id)
    row = await account_service.patch(tx.conn, account_id, data)
    tx.on_commit.append(lambda: tx.rt.verifier.invalidate_account(account_id))
    return account_service.account_view(row)


@post("/accounts/{customer_id:str}/tokens", status_code=HTTP_201_CREATED)
async def create_token(request: Req, tx: TxDep, customer_id: FromPath[str]) -> TokenCreated:
    data = await read_struct(request, TokenCreate)
    return await token_service.mint_portal_token(
        tx.conn, _customer(customer_id), data.scopes, data.expiresIn, tx.rt.clock.real_now()
    )


@delete("/tokens/{token_id:str}", status_code=HTTP_200_OK)
async def revoke_token(tx: TxDep, token_id: FromPath[str]) -> TokenRevoked:
    await token_service.revoke(tx.conn, token_id, tx.rt.clock.real_now())
    tx.on_commit.append(lambda: tx.rt.verifier.invalidate_token(token_id))
    return TokenRevoked(id=token_id, revoked=True)


async def _provide_caller(request: Req, customer_id: FromPath[str]) -> int:
    """The account a call is placed for, before the body is read: 404 when unknown. A
    suspended one is answered by ``originate`` as on ``POST /v1/calls`` (502
    ``originate_failed``, "account suspended")."""
    account_id = _customer(customer_id)
    async with runtime(request).db.read() as conn:
        await account_service.get(conn, account_id)
    return account_id


async def _provide_call_body(request: Req, caller: NamedDependency[int]) -> Any:
    """The JSON body, read before the write transaction opens (as ``POST /v1/calls``)."""
    return await read_json(request)


async def _provide_call_tx(request: Req, payload: NamedDependency[Any]) -> AsyncGenerator[Tx, None]:
    async for tx in provide_tx(request):
        yield tx


@post(
    "/accounts/{customer_id:str}/calls",
    status_code=HTTP_200_OK,
    dependencies={
        "caller": Provide(_provide_caller),
        "payload": Provide(_provide_call_body),
        "tx": Provide(_provide_call_tx),
    },
)
async def place_call(
    caller: NamedDependency[int], payload: NamedDependency[Any], tx: TxDep
) -> CallQueued:
    """Place a call on behalf of an account with the admin token, no portal token needed
    (the dashboard's "Place a call"). Same body, same checks in the same order, same answers
    and the same call lifecycle as ``POST /v1/calls``: both run ``services.calls.originate``.
    Not a contract operation: ``Prefer`` headers and api fault rules do not apply."""
    return await call_service.originate(tx, tx.rt.deps, caller, payload)


@post("/accounts/{customer_id:str}/oauth-clients", status_code=HTTP_201_CREATED)
async def create_oauth_client(
    request: Req, tx: TxDep, customer_id: FromPath[str]
) -> OAuthClientCreated:
    data = await read_struct(request, OAuthClientCreate)
    return await token_service.create_oauth_client(
        tx.conn, _customer(customer_id), data.scopes, tx.rt.clock.real_now()
    )


@post("/accounts/{customer_id:str}/agents", status_code=HTTP_201_CREATED)
async def create_agent(request: Req, tx: TxDep, customer_id: FromPath[str]) -> AgentView:
    data = await read_struct(request, AgentCreate)
    row = await account_service.create_agent(
        tx.conn, _customer(customer_id), data, tx.rt.clock.now()
    )
    return account_service.agent_view(row)


@post("/accounts/{customer_id:str}/cdrs/generate", status_code=HTTP_202_ACCEPTED)
async def generate_cdrs(request: Req, tx: TxDep, customer_id: FromPath[str]) -> BulkJobView:
    """Starts a background job (the worker inserts the CDRs in chunks); follow it with
    ``GET /_sandbox/jobs/{jobId}``."""
    data = await read_struct(request, CdrGenerate)
    account = await account_service.get(tx.conn, _customer(customer_id))
    now = tx.rt.clock.now()
    till = now if data.till is None else cdr_service.parse_timestamp(data.till)
    start = till - 7 * 86400.0 if data.from_ is None else cdr_service.parse_timestamp(data.from_)
    plan = await cdr_service.plan_generation(
        tx.conn, account.id, data.count, start, till, account.currency
    )
    real_now = tx.rt.clock.real_now()
    job_id = await bulk_service.start_generation(tx.conn, plan, real_now)
    tx.after_commit.append(bulk_service.job_spec(job_id, 0))
    return await bulk_service.get(tx.conn, job_id, real_now)


@get("/jobs/{job_id:str}")
async def get_job(request: Req, job_id: FromPath[str]) -> BulkJobView:
    """A background job's progress: done/total, state, ETA."""
    rt = runtime(request)
    async with rt.db.read() as conn:
        return await bulk_service.get(conn, job_id, rt.clock.real_now())


@get("/calls/{call_id:str}")
async def get_call(request: Req, call_id: FromPath[str]) -> CallView:
    async with runtime(request).db.read() as conn:
        return await call_service.describe(conn, call_id)


class EventFire(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    customerId: str
    event: str
    fields: dict[str, Any] = msgspec.field(default_factory=dict)


@post("/events", status_code=HTTP_201_CREATED)
async def fire_event(request: Req, tx: TxDep) -> dict[str, Any]:
    data = await read_struct(request, EventFire)
    if data.event not in event_service.EVENT_TYPES:
        raise InvalidInput(f"event must be one of {', '.join(event_service.EVENT_TYPES)}.")
    event_service.check_fields(data.event, data.fields)
    account_id = _customer(data.customerId)
    await account_service.get(tx.conn, account_id)
    fired = await event_service.fire(
        tx.conn,
        account_id,
        data.event,
        data.fields,
        tx.rt.clock.now(),
        tx.rt.settings.resolved_seed,
        await next_id(tx.conn, "event"),
        call_service.contact_id,
    )
    tx.after_commit.extend(fired.jobs)
    return {
        "eventId": fired.event_id,
        "event": data.event,
        "deliveries": fired.deliveries,
        "body": fired.body,
    }


@get("/deliveries")
async def list_deliveries(request: Req) -> DeliveryList:
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in delivery_service.STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(delivery_service.STATUSES)}.")
    hook_id = q.get("hookId")
    if hook_id is not None:
        hook_id = hook_service.parse_uuid(hook_id)
    customer = q.get("customerId")
    limit = cdr_service.parse_limit(q.get("limit"))
    async with runtime(request).db.read() as conn:
        items = await delivery_service.listing(
            conn,
            hook_id=hook_id,
            status=status,
            event=q.get("event"),
            account_id=None if customer is None else _customer(customer),
            limit=limit,
        )
    # The service's items are plain data (the dashboard's stream encodes them as they are).
    views = msgspec.convert(items, list[DeliveryView])
    return DeliveryList(count=len(views), deliveries=views)


@post("/deliveries/{delivery_id:str}/redeliver", status_code=HTTP_200_OK)
async def redeliver(tx: TxDep, delivery_id: FromPath[str]) -> Redelivery:
    job = await delivery_service.redeliver(
        tx.conn, hook_service.parse_uuid(delivery_id), tx.rt.clock.now()
    )
    tx.after_commit.append(job)
    return Redelivery(id=delivery_id, status="pending")


class ClockAdvance(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``{"seconds": n}`` or ``{"to": "<RFC 3339>"}``: exactly one."""

    seconds: float | None = None
    to: str | None = None


async def _advance(tx: Tx, seconds: float | None, to: float | None) -> ClockAdvanced:
    """Move sandbox time by ``seconds`` or to ``to`` (neither: until nothing is pending) and
    run what falls due on the way, in planned order, as of its planned time
    (``services.clock``)."""
    rt = tx.rt
    done = await clock_service.advance(
        tx.conn, rt.settings.resolved_seed, rt.rates, seconds=seconds, to=to
    )
    tx.on_commit.append(
        lambda: rt.clock.reanchor(done.scale, done.anchor_real, done.anchor_sandbox)
    )
    tx.after_commit.extend(done.jobs)
    return ClockAdvanced(
        sandboxTime=iso(done.target),
        advancedSec=round(done.advanced, 3),
        calls=done.calls,
        steps=done.steps,
        deliveries=done.deliveries,
    )


@post("/clock/advance", status_code=HTTP_200_OK)
async def advance_clock(request: Req, tx: TxDep) -> ClockAdvanced:
    """Move sandbox time forward; every call step and webhook attempt due in between
    happens in order at its planned sandbox time (CDRs keep planned durations and prices)."""
    data = await read_struct(request, ClockAdvance)
    if (data.seconds is None) == (data.to is None):
        raise InvalidInput('Send exactly one of "seconds" and "to".')
    if data.seconds is not None:
        if not 0 <= data.seconds <= MAX_ADVANCE_SEC:
            raise InvalidInput(f"seconds must be between 0 and {MAX_ADVANCE_SEC}.")
        return await _advance(tx, data.seconds, None)
    assert data.to is not None
    now = tx.rt.clock.now()
    target = cdr_service.parse_timestamp(data.to)
    if target < now - 1:
        raise InvalidInput(f"to is before the sandbox time {iso(now)}; time only moves on.")
    if target - now > MAX_ADVANCE_SEC:
        raise InvalidInput(f"to is more than {MAX_ADVANCE_SEC} seconds ahead.")
    return await _advance(tx, None, target)


@post("/clock/fast-forward", status_code=HTTP_200_OK)
async def fast_forward(tx: TxDep) -> FastForwarded:
    """Advance until nothing is pending: to the last planned call step and webhook attempt,
    with the same guarantee as ``advance``."""
    done = await _advance(tx, None, None)
    return FastForwarded(calls=done.calls, deliveries=done.deliveries, sandboxTime=done.sandboxTime)


@get("/clock")
async def get_clock(request: Req) -> ClockView:
    rt = runtime(request)
    await clock_service.sync(rt.db, rt.clock)
    return ClockView(sandboxTime=iso(rt.clock.now()), scale=rt.clock.scale)


@post("/faults", status_code=HTTP_201_CREATED)
async def create_fault(request: Req, tx: TxDep) -> FaultRule:
    data = await read_struct(request, fault_service.FaultCreate)
    account_id = None
    if data.customerId is not None:
        account_id = (await account_service.get(tx.conn, _customer(data.customerId))).id
    rule = await fault_service.create(tx.conn, data, account_id, tx.rt.clock.now())
    tx.on_commit.append(tx.rt.faults.invalidate)
    return rule


@get("/faults")
async def list_faults(request: Req) -> FaultList:
    async with runtime(request).db.read() as conn:
        rules = await fault_service.listing(conn)
    return FaultList(count=len(rules), faults=rules)


@delete("/faults/{fault_id:str}", status_code=HTTP_200_OK)
async def delete_fault(tx: TxDep, fault_id: FromPath[str]) -> FaultDeleted:
    await fault_service.remove(tx.conn, fault_id)
    tx.on_commit.append(tx.rt.faults.invalidate)
    return FaultDeleted(id=fault_id, deleted=True)


@delete("/faults", status_code=HTTP_200_OK)
async def delete_faults(tx: TxDep) -> FaultsDeleted:
    count = await fault_service.remove(tx.conn, None)
    tx.on_commit.append(tx.rt.faults.invalidate)
    return FaultsDeleted(deleted=count)


@post("/reset", status_code=HTTP_200_OK, opt={TX_BUDGET: 0})  # wipes every table: no budget
async def reset(tx: TxDep) -> ResetDone:
    rt = tx.rt
    # The clock is not reset: every process shares its anchor, and it only moves forward.
    await demo_data.wipe(tx.conn)
    tx.on_commit.append(rt.faults.invalidate)
    customer = await demo_data.load(tx.conn, rt.clock.now(), rt.settings.resolved_seed, rt.rates)
    tx.on_commit.append(rt.verifier.clear)
    # The demo token stored in the data dir (the one the banner prints) stays valid.
    stored = credentials.read_secret(rt.settings.data_dir, credentials.DEMO_FILE)
    now = rt.clock.real_now()
    if stored is not None and await credentials.install_demo_token(tx.conn, stored, now) in (
        "present",
        "created",
    ):
        return ResetDone(reset=True, customerId=str(customer), demoToken=stored)
    token = await token_service.mint_portal_token(tx.conn, customer, list(ALL_SCOPES), None, now)
    return ResetDone(reset=True, customerId=str(customer), demoToken=token.token)


sandbox_router = Router(
    path="/_sandbox",
    guards=[admin_guard],
    dependencies={"tx": Provide(provide_tx)},
    route_handlers=[
        create_account,
        list_accounts,
        account_overview,
        get_account,
        patch_account,
        create_token,
        revoke_token,
        place_call,
        create_oauth_client,
        create_agent,
        generate_cdrs,
        get_job,
        get_call,
        fire_event,
        list_deliveries,
        redeliver,
        advance_clock,
        fast_forward,
        get_clock,
        reset,
        create_fault,
        list_faults,
        delete_fault,
        delete_faults,
    ],
)
