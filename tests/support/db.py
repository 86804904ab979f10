"""Looking at the database directly, for assertions about what must not change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.db.engine import read
from unlimcall_sandbox.server.db.tables import accounts, metadata


async def fingerprint(sb: Sandbox, customer: str) -> list[Any]:
    """What a rejected request by ``customer`` must not move: the number of accounts, the
    customer's rows in every table that has an owner (tokens aside: fixtures mint them),
    and its balance. Scoped to one account because the shared sandbox keeps working in the
    background (other tests' calls end, their retries run)."""
    account_id = int(customer)
    async with read(sb.rt.engine) as conn:
        counts: list[tuple[str, int]] = [
            (
                "accounts",
                (await conn.execute(select(func.count()).select_from(accounts))).scalar_one(),
            )
        ]
        for table in metadata.sorted_tables:
            if "account_id" in table.c and table.name != "tokens":
                n = (
                    await conn.execute(
                        select(func.count())
                        .select_from(table)
                        .where(table.c.account_id == account_id)
                    )
                ).scalar_one()
                counts.append((table.name, n))
        balance = (
            await conn.execute(select(accounts.c.balance_e4).where(accounts.c.id == account_id))
        ).scalar_one()
    return [counts, balance]
