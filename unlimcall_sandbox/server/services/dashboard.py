"""Read models for the dashboard: one account's overview, and what changed since a tick."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.fastread import FastReads
from unlimcall_sandbox.server.db.tables import (
    accounts,
    calls,
    cdrs,
    deliveries,
    delivery_attempts,
    hooks,
    tokens,
)
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import cdrs as cdr_service
from unlimcall_sandbox.server.services import deliveries as delivery_service


async def list_accounts(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(accounts).order_by(accounts.c.id))).all()
    return [msgspec_to_dict(account_service.account_view(r)) for r in rows]


def msgspec_to_dict(struct: Any) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(struct)
    return data


def _call(row: Any) -> dict[str, Any]:
    def ts(value: float | None) -> str | None:
        return None if value is None else iso(value)

    return {
        "callId": row.id,
        "toNumber": row.to_number,
        "aiAgentId": str(row.agent_id),
        "state": row.state,
        "outcome": row.outcome,
        "scenario": row.scenario,
        "createdAt": ts(row.created_at),
        "updatedAt": ts(row.updated_at),
        "endedAt": ts(row.ended_at),
        "nextStepAt": ts(row.next_step_at),
    }


async def recent_calls(
    conn: AsyncConnection, account_id: int, limit: int = 50, since: float | None = None
) -> list[dict[str, Any]]:
    stmt = select(calls).where(calls.c.account_id == account_id)
    if since is not None:
        stmt = stmt.where(calls.c.updated_at > since)
    stmt = stmt.order_by(calls.c.created_at.desc()).limit(limit)
    return [_call(r) for r in (await conn.execute(stmt)).all()]


async def overview(
    conn: AsyncConnection,
    reads: FastReads,
    account_id: int,
    now: float,
    disposition: str | None,
    country: str | None,
) -> dict[str, Any]:
    account = await account_service.get(conn, account_id)
    agent_rows = await account_service.list_agents(reads, account_id)
    token_rows = (
        await conn.execute(
            select(
                tokens.c.id,
                tokens.c.prefix,
                tokens.c.kind,
                tokens.c.scopes,
                tokens.c.expires_at,
                tokens.c.revoked_at,
            )
            .where(tokens.c.account_id == account_id)
            .order_by(tokens.c.created_at.desc())
            .limit(50)
        )
    ).all()
    hook_rows = (
        await conn.execute(
            select(hooks.c.id, hooks.c.event, hooks.c.target_url, hooks.c.active)
            .where(hooks.c.account_id == account_id)
            .order_by(hooks.c.created_at.desc())
        )
    ).all()
    cdr_stmt = cdr_service.window_query(account_id, now - 31 * 86400, now, 50)
    if disposition:
        cdr_stmt = cdr_stmt.where(cdrs.c.disposition == disposition)
    if country:
        cdr_stmt = cdr_stmt.where(cdrs.c.country == country)
    cdr_list = [
        msgspec_to_dict(cdr_service.to_struct(r)) for r in (await conn.execute(cdr_stmt)).all()
    ]
    countries = sorted(
        (
            await conn.execute(
                select(cdrs.c.country).where(cdrs.c.account_id == account_id).distinct()
            )
        )
        .scalars()
        .all()
    )
    hour_ago = now - 3600
    per_minute: dict[str, Counter[str]] = defaultdict(Counter)
    spend: dict[str, int] = defaultdict(int)
    for start, disp, cents in (
        await conn.execute(
            select(cdrs.c.start_time, cdrs.c.disposition, cdrs.c.sell_price_cents).where(
                cdrs.c.account_id == account_id, cdrs.c.start_time >= hour_ago
            )
        )
    ).all():
        minute = iso(start - start % 60)
        per_minute[minute][disp] += 1
        spend[minute] += cents
    status_rows = (
        await conn.execute(
            select(deliveries.c.status, func.count())
            .where(deliveries.c.account_id == account_id)
            .group_by(deliveries.c.status)
        )
    ).all()
    status_counts = {str(s): int(n) for s, n in status_rows}
    latencies = sorted(
        (
            await conn.execute(
                select(delivery_attempts.c.latency_ms)
                .join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
                .where(deliveries.c.account_id == account_id)
                .order_by(delivery_attempts.c.id.desc())
                .limit(500)
            )
        )
        .scalars()
        .all()
    )
    return {
        "account": msgspec_to_dict(account_service.account_view(account)),
        "agents": [msgspec_to_dict(a) for a in agent_rows],
        "tokens": [
            {
                "id": t.id,
                "prefix": t.prefix,
                "kind": t.kind,
                "scopes": t.scopes.split(),
                "expiresAt": None if t.expires_at is None else iso(t.expires_at),
                "revoked": t.revoked_at is not None,
            }
            for t in token_rows
        ],
        "hooks": [
            {"id": h.id, "event": h.event, "targetUrl": h.target_url, "active": h.active}
            for h in hook_rows
        ],
        "cdrs": cdr_list,
        "countries": countries,
        "calls": await recent_calls(conn, account_id),
        "deliveries": await delivery_service.listing(
            conn, hook_id=None, status=None, event=None, account_id=account_id, limit=50
        ),
        "charts": {
            "callsPerMinute": [{"minute": m, **dict(c)} for m, c in sorted(per_minute.items())],
            "spendPerMinute": [{"minute": m, "cents": c} for m, c in sorted(spend.items())],
            "deliveries": {k: int(v) for k, v in status_counts.items()},
            "latencyP50": latencies[len(latencies) // 2] if latencies else None,
            "latencyP95": latencies[int(len(latencies) * 0.95)] if latencies else None,
        },
        "sandboxTime": iso(now),
    }


async def changes(conn: AsyncConnection, account_id: int, since: float) -> dict[str, Any]:
    """Calls and deliveries of this account that changed after ``since`` (sandbox time)."""
    changed_calls = await recent_calls(conn, account_id, limit=200, since=since)
    touched = (
        (
            await conn.execute(
                select(delivery_attempts.c.delivery_id)
                .join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
                .where(
                    deliveries.c.account_id == account_id, delivery_attempts.c.attempted_at > since
                )
                .distinct()
            )
        )
        .scalars()
        .all()
    )
    new = (
        (
            await conn.execute(
                select(deliveries.c.id).where(
                    deliveries.c.account_id == account_id, deliveries.c.created_at > since
                )
            )
        )
        .scalars()
        .all()
    )
    ids = sorted(set(touched) | set(new))
    items = []
    for delivery_id in ids[:100]:
        found = await delivery_service.listing(
            conn,
            hook_id=None,
            status=None,
            event=None,
            account_id=account_id,
            limit=1,
            delivery_id=delivery_id,
        )
        items.extend(found)
    return {"calls": changed_calls, "deliveries": items}


def encode(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
