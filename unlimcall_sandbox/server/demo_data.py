"""The demo dataset (``fixtures/demo.json``): loaded into an empty database and on reset."""

from __future__ import annotations

import json
from importlib.resources.abc import Traversable
from typing import Any

from sqlalchemy import delete, func, select, text

from unlimcall_sandbox.resources import FIXTURES
from unlimcall_sandbox.server import ids
from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import (
    accounts,
    agents,
    calls,
    cdrs,
    counters,
    deliveries,
    delivery_attempts,
    events,
    faults,
    hooks,
    inbox_messages,
    inboxes,
    oauth_clients,
    tokens,
)
from unlimcall_sandbox.server.rating import RateTable
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import cdrs as cdr_service
from unlimcall_sandbox.server.structs import AccountCreate, AgentCreate

DEMO = FIXTURES / "demo.json"

# Children first, so foreign keys never object.
_ALL_TABLES = (
    faults,
    inbox_messages,
    inboxes,
    delivery_attempts,
    deliveries,
    events,
    hooks,
    cdrs,
    calls,
    tokens,
    oauth_clients,
    agents,
    accounts,
    counters,
)


async def is_empty(conn: Conn) -> bool:
    count: int = (await conn.execute(select(func.count()).select_from(accounts))).scalar_one()
    return count == 0


async def load(
    conn: Conn, now: float, seed: int, rates: RateTable, path: Traversable = DEMO
) -> int:
    """Load the dataset; returns the first account's customer id."""
    data = json.loads(path.read_bytes())
    first: int | None = None
    for acc in data["accounts"]:
        row = await account_service.create(
            conn,
            AccountCreate(
                companyName=acc["companyName"],
                primaryContactEmail=acc["primaryContactEmail"],
                accountType=acc["accountType"],
                balance=acc["balance"],
                currency=acc["currency"],
                creditLimit=acc["creditLimit"],
            ),
            now,
            account_id=acc["customerId"],
        )
        first = first if first is not None else int(row.id)
        for ag in acc.get("agents", []):
            await account_service.create_agent(
                conn,
                row.id,
                AgentCreate(
                    label=ag["label"],
                    sipUsername=ag["sipUsername"],
                    provisioned=ag["provisioned"],
                    callerId=ag["callerId"],
                    did=ag["did"],
                ),
                now,
                agent_id=ag["id"],
            )
        for c in acc.get("cdrs", []):
            await cdr_service.insert_one(conn, _cdr_values(row.id, c))
        history = acc.get("history")
        if history:
            await cdr_service.generate(
                conn,
                row.id,
                history["count"],
                now - history["days"] * 86400.0,
                now,
                seed,
                rates,
                row.currency,
            )
    await _fix_sequences(conn)
    if first is None:
        raise ValueError(f"{path} has no accounts")
    return first


def _cdr_values(account_id: int, c: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": c["id"],
        "account_id": account_id,
        "start_time": cdr_service.parse_timestamp(c["startTime"]),
        "duration": c["duration"],
        "billsec": c["billsec"],
        "src": c["src"],
        "dst": c["dst"],
        "disposition": c["disposition"],
        "sip_username": c["sipUsername"],
        "sell_price_cents": c["sellPriceCents"],
        "currency": c["currency"],
        "country": c["country"],
        "did": c["did"],
    }


async def _fix_sequences(conn: Conn) -> None:
    """Explicit ids leave PostgreSQL's sequences behind; move them past the data."""
    if conn.dialect.name != "postgresql":
        return
    for table in ("accounts", "agents"):
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"GREATEST((SELECT MAX(id) FROM {table}), 1))"
            )
        )


async def wipe(conn: Conn) -> None:
    for table in _ALL_TABLES:
        await conn.execute(delete(table))
    await ids.restart(conn)
