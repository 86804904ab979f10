"""Accounts and their agents: the control plane creates and changes them, ``/v1`` reads."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
from sqlalchemy import bindparam, func, select, update

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.port import Conn, Database
from unlimcall_sandbox.server.db.tables import accounts, agents
from unlimcall_sandbox.server.errors import InvalidInput, NotFound
from unlimcall_sandbox.server.phone import is_e164
from unlimcall_sandbox.server.structs import (
    AccountCreate,
    AccountPatch,
    AccountView,
    Agent,
    AgentCreate,
    AgentView,
)

E4 = 10_000


def to_e4(amount: float) -> int:
    """Currency units → ten-thousandths, exactly as written (42.7831 → 427831)."""
    return round(amount * E4)


def from_e4(value: int) -> float:
    return value / E4


def is_blocked(row: Any) -> bool:
    return blocked(row.account_type, row.balance_e4, row.credit_limit_e4)


def blocked(account_type: str, balance_e4: int, credit_limit_e4: int | None) -> bool:
    """A prepaid account is blocked once its balance is exhausted; a postpaid one once it
    is past its credit limit (no limit: never)."""
    if account_type == "prepaid":
        return balance_e4 <= 0
    if credit_limit_e4 is None:
        return False
    return balance_e4 <= -credit_limit_e4


def account_view(row: Any) -> AccountView:
    return AccountView(
        customerId=str(row.id),
        companyName=row.company_name,
        primaryContactEmail=row.primary_contact_email,
        accountType=row.account_type,
        balance=from_e4(row.balance_e4),
        currency=row.currency,
        creditLimit=None if row.credit_limit_e4 is None else from_e4(row.credit_limit_e4),
        status=row.status,
        provisioned=row.provisioned,
        dialerEnabled=row.dialer_enabled,
        engineConfigured=row.engine_configured,
        balanceUpstream=row.balance_upstream,
        blocked=is_blocked(row),
        createdAt=iso(row.created_at),
    )


def _check_money(value: float, field: str) -> None:
    if value != value or abs(value) > 1e11:  # NaN or absurd
        raise InvalidInput(f"{field} must be a finite amount below 1e11.")


async def get(conn: Conn, account_id: int) -> Any:
    row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
    if row is None:
        raise NotFound(f"No account {account_id}.")
    return row


async def every(conn: Conn) -> list[Any]:
    """Every account, oldest first."""
    return list((await conn.execute(select(accounts).order_by(accounts.c.id))).all())


def parse_customer_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 15:
        raise NotFound(f"No account {raw!r}.")
    return int(raw)


async def create(conn: Conn, data: AccountCreate, now: float, account_id: int | None = None) -> Any:
    _check_money(data.balance, "balance")
    if data.creditLimit is not None:
        _check_money(data.creditLimit, "creditLimit")
    if not data.companyName.strip() or "@" not in data.primaryContactEmail:
        raise InvalidInput("companyName must be non-empty and primaryContactEmail an email.")
    if len(data.currency) != 3 or not data.currency.isalpha():
        raise InvalidInput("currency must be a 3-letter ISO 4217 code.")
    values: dict[str, Any] = {
        "company_name": data.companyName,
        "primary_contact_email": data.primaryContactEmail,
        "account_type": data.accountType,
        "currency": data.currency.upper(),
        "balance_e4": to_e4(data.balance),
        "credit_limit_e4": None if data.creditLimit is None else to_e4(data.creditLimit),
        "status": "active",
        "provisioned": True,
        "dialer_enabled": True,
        "engine_configured": True,
        "balance_upstream": "ok",
        "created_at": now,
    }
    if account_id is not None:
        values["id"] = account_id
    new_id = (
        await conn.execute(accounts.insert().values(**values).returning(accounts.c.id))
    ).scalar_one()
    return await get(conn, int(new_id))


_PATCH_COLUMNS = {
    "status": "status",
    "provisioned": "provisioned",
    "dialerEnabled": "dialer_enabled",
    "engineConfigured": "engine_configured",
    "balanceUpstream": "balance_upstream",
    "companyName": "company_name",
    "primaryContactEmail": "primary_contact_email",
    "accountType": "account_type",
}


async def patch(conn: Conn, account_id: int, data: AccountPatch) -> Any:
    await get(conn, account_id)
    values: dict[str, Any] = {}
    for field, column in _PATCH_COLUMNS.items():
        value = getattr(data, field)
        if value is not msgspec.UNSET:
            values[column] = value
    if data.balance is not msgspec.UNSET:
        _check_money(data.balance, "balance")
        values["balance_e4"] = to_e4(data.balance)
    if data.creditLimit is not msgspec.UNSET:
        if data.creditLimit is not None:
            _check_money(data.creditLimit, "creditLimit")
        values["credit_limit_e4"] = None if data.creditLimit is None else to_e4(data.creditLimit)
    if values:
        await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
    return await get(conn, account_id)


# ---- agents --------------------------------------------------------------------------


def agent_view(row: Any) -> AgentView:
    return AgentView(
        id=str(row.id),
        sipUsername=row.sip_username,
        label=row.label,
        createdAt=iso(row.created_at),
        provisioned=row.provisioned,
        callerId=row.caller_id,
        did=row.did,
    )


_AGENTS = (
    select(agents.c.id, agents.c.sip_username, agents.c.label, agents.c.created_at)
    .where(agents.c.account_id == bindparam("account_id"))
    .order_by(agents.c.id)
)


async def list_agents(reads: Database, account_id: int) -> list[Agent]:
    rows = await reads.all(_AGENTS, {"account_id": account_id})
    return [Agent(id=str(r[0]), sipUsername=r[1], label=r[2], createdAt=iso(r[3])) for r in rows]


async def create_agent(
    conn: Conn,
    account_id: int,
    data: AgentCreate,
    now: float,
    agent_id: int | None = None,
) -> Any:
    await get(conn, account_id)
    label = data.label.strip()
    if not label or len(label) > 200:
        raise InvalidInput("label must be 1..200 characters.")
    for field in ("callerId", "did"):
        value = getattr(data, field)
        if value is not None and not is_e164(value):
            raise InvalidInput(f"{field} must be an E.164 number.")
    sip_username = data.sipUsername
    if sip_username is None:
        count = (await conn.execute(select(func.count()).select_from(agents))).scalar_one()
        sip_username = f"unl_{count + 1:03d}"
        while (
            await conn.execute(select(agents.c.id).where(agents.c.sip_username == sip_username))
        ).first():
            sip_username = f"unl_{secrets.token_hex(3)}"
    elif not (0 < len(sip_username) <= 64) or not sip_username.replace("_", "").isalnum():
        raise InvalidInput("sipUsername must be 1..64 letters, digits or underscores.")
    elif (
        await conn.execute(select(agents.c.id).where(agents.c.sip_username == sip_username))
    ).first():
        raise InvalidInput(f"sipUsername {sip_username!r} is taken.")
    values: dict[str, Any] = {
        "account_id": account_id,
        "sip_username": sip_username,
        "sip_password": secrets.token_urlsafe(18),
        "label": label,
        "caller_id": data.callerId or "+14155550100",
        "did": data.did,
        "provisioned": data.provisioned,
        "created_at": now,
    }
    if agent_id is not None:
        values["id"] = agent_id
    new_id = (
        await conn.execute(agents.insert().values(**values).returning(agents.c.id))
    ).scalar_one()
    return (await conn.execute(select(agents).where(agents.c.id == new_id))).one()
