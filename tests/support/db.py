"""Looking at the database directly, for assertions about what must not change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from server.db.engine import read
from server.db.tables import accounts, metadata
from tests.support.sandbox import Sandbox


async def fingerprint(sb: Sandbox) -> list[Any]:
    """Row counts of every table and every balance: what a rejected request must not move.
    (Tokens are left out: the fixtures that make callers mint them.)"""
    async with read(sb.rt.engine) as conn:
        counts = [
            (t.name, (await conn.execute(select(func.count()).select_from(t))).scalar_one())
            for t in metadata.sorted_tables
            if t.name != "tokens"
        ]
        balances = (
            await conn.execute(select(accounts.c.id, accounts.c.balance_e4).order_by(accounts.c.id))
        ).all()
    return [counts, [tuple(b) for b in balances]]
