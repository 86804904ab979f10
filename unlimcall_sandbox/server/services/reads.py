"""The ``/v1`` reads: who the caller is, the balance, the CDR window, the agents.

Each is one statement on the read path (``Database``) against one account; the caller
has been authenticated already, so its account exists. All their SQL lives here (the CDR
window's statement is ``services.cdrs``'s, beside the CDR writes that share its index).
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from unlimcall_sandbox.server.auth import Principal
from unlimcall_sandbox.server.db.port import Database
from unlimcall_sandbox.server.db.tables import accounts
from unlimcall_sandbox.server.errors import AccountNotProvisioned, BalanceUnavailable
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import cdrs as cdr_service
from unlimcall_sandbox.server.structs import AgentList, Balance, Me


def me_of(principal: Principal) -> Me:
    """``GET /v1/me``: everything it says was read when the token was verified."""
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
    accounts.c.status,
).where(accounts.c.id == bindparam("account_id"))
_PROVISIONED = select(accounts.c.provisioned).where(accounts.c.id == bindparam("account_id"))


async def balance_of(reads: Database, account_id: int) -> Balance:
    """``GET /v1/balance``; ``balance_unavailable`` while the upstream snapshot fails. A
    suspended account is ``blocked`` whatever its balance (the contract lists no 403 here:
    this is how the balance says it cannot call)."""
    row = await reads.one_or_none(_BALANCE, {"account_id": account_id})
    assert row is not None  # the token's account exists: it was just verified
    balance_e4, currency, account_type, credit_limit_e4, upstream, status = row
    if upstream == "failing":
        raise BalanceUnavailable()
    return Balance(
        balance=account_service.from_e4(balance_e4),
        currency=currency,
        accountType=account_type,
        creditLimit=None if credit_limit_e4 is None else account_service.from_e4(credit_limit_e4),
        blocked=status == "suspended"
        or account_service.blocked(account_type, balance_e4, credit_limit_e4),
        stale=upstream == "stale",
    )


async def cdrs_of(
    reads: Database,
    account_id: int,
    from_raw: str | None,
    till_raw: str | None,
    limit_raw: str | None,
    now: float,
) -> bytes:
    """``GET /v1/cdrs``: the contract's ``CdrList`` body, already encoded (joined from the
    rows' stored JSON). The window is checked before the account is."""
    start, till, limit = cdr_service.parse_window(from_raw, till_raw, limit_raw, now)
    row = await reads.one_or_none(_PROVISIONED, {"account_id": account_id})
    if row is None or not row[0]:
        raise AccountNotProvisioned()
    return await cdr_service.window_body(reads, account_id, start, till, limit)


async def agents_of(reads: Database, account_id: int) -> AgentList:
    """``GET /v1/agents``: every agent, without credentials."""
    rows = await account_service.list_agents(reads, account_id)
    return AgentList(count=len(rows), agents=rows)
