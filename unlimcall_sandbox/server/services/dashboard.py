"""Read models for the dashboard: the call floor, a call's whole story, the webhook inbox,
the last hour's charts, paginated tables, and what changed since a tick of the live stream.

A call's outcome is shown only once the call has reached it: the plan is fixed when a call
is queued, but the dashboard says "answered" only once it was answered, and how it ended
(voicemail, transfer, ...) only once it ended.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from typing import Any

import msgspec
from sqlalchemy import func, select

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.port import Conn, Database
from unlimcall_sandbox.server.db.tables import (
    accounts,
    agents,
    calls,
    cdrs,
    deliveries,
    delivery_attempts,
    events,
    hooks,
    inbox_messages,
    inboxes,
    tokens,
)
from unlimcall_sandbox.server.errors import NotFound
from unlimcall_sandbox.server.rating import RateTable
from unlimcall_sandbox.server.services import accounts as account_service
from unlimcall_sandbox.server.services import cdrs as cdr_service
from unlimcall_sandbox.server.services import deliveries as delivery_service
from unlimcall_sandbox.server.services import demo as demo_service
from unlimcall_sandbox.server.services.inbox import parse_body

PAGE_MAX = 100
REACHED_OUTCOME = frozenset({"answered", "busy", "no_answer", "failed", "ended"})
DISPOSITIONS = ("ANSWERED", "NO ANSWER", "BUSY", "FAILED")
INBOX_PATH = "/_sandbox/inbox/"


async def list_accounts(conn: Conn) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(accounts).order_by(accounts.c.id))).all()
    return [msgspec_to_dict(account_service.account_view(r)) for r in rows]


def msgspec_to_dict(struct: Any) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(struct)
    return data


def _ts(value: float | None) -> str | None:
    return None if value is None else iso(value)


def _call(row: Any) -> dict[str, Any]:
    """A call as the dashboard shows it: the outcome once reached, how it went once ended."""
    state = row.state
    return {
        "callId": row.id,
        "toNumber": row.to_number,
        "aiAgentId": str(row.agent_id),
        "state": state,
        "outcome": row.outcome if state in REACHED_OUTCOME else None,
        "scenario": row.scenario if state == "ended" else None,
        "createdAt": _ts(row.created_at),
        "updatedAt": _ts(row.updated_at),
        "endedAt": _ts(row.ended_at),
        # Sandbox unix seconds, for live timers.
        "t": {
            "created": row.created_at,
            "ringing": row.ringing_at,
            "answered": row.answered_at,
            "ended": row.ended_at,
        },
    }


def _with_rate(view: dict[str, Any], to_number: str, rates: RateTable) -> dict[str, Any]:
    rate = rates.rate_for(to_number)
    view["country"] = rate.country
    view["centsPerMinute"] = float(rate.cents_per_minute)
    return view


async def recent_calls(
    conn: Conn, account_id: int, limit: int = 50, since: float | None = None
) -> list[dict[str, Any]]:
    stmt = select(calls).where(calls.c.account_id == account_id)
    if since is not None:
        stmt = stmt.where(calls.c.updated_at > since)
    stmt = stmt.order_by(calls.c.created_at.desc()).limit(limit)
    return [_call(r) for r in (await conn.execute(stmt)).all()]


def _page(offset: int, limit: int) -> tuple[int, int]:
    return max(0, offset), max(1, min(PAGE_MAX, limit))


# -- the call floor --------------------------------------------------------------------------


async def floor(
    conn: Conn, account_id: int, now: float, scale: float, rates: RateTable
) -> dict[str, Any]:
    """Agents as tiles (what each is doing now), the calls in flight and the last hour."""
    account = await account_service.get(conn, account_id)
    agent_rows = (
        await conn.execute(
            select(agents.c.id, agents.c.label, agents.c.sip_username, agents.c.provisioned)
            .where(agents.c.account_id == account_id)
            .order_by(agents.c.id)
        )
    ).all()
    latest = await demo_service.latest_calls(conn, account_id)
    labels = {int(a.id): str(a.label) for a in agent_rows}
    tiles = []
    for agent in agent_rows:
        call = latest.get(int(agent.id))
        doing = demo_service.activity(call, now)
        tiles.append(
            {
                "id": str(agent.id),
                "label": agent.label,
                "sipUsername": agent.sip_username,
                "provisioned": bool(agent.provisioned),
                **doing,
                "call": None
                if call is None or doing["activity"] == "idle"
                else _with_rate(_call(call), call.to_number, rates),
                "lastCall": None
                if call is None
                else _with_rate(_call(call), call.to_number, rates),
            }
        )
    flying = (
        await conn.execute(
            select(calls)
            .where(calls.c.account_id == account_id, calls.c.state != "ended")
            .order_by(calls.c.created_at.desc())
            .limit(50)
        )
    ).all()
    flying_count = (
        await conn.execute(
            select(func.count())
            .select_from(calls)
            .where(calls.c.account_id == account_id, calls.c.state != "ended")
        )
    ).scalar_one()
    hour_ago = now - 3600
    spent = (
        await conn.execute(
            select(
                func.coalesce(func.sum(cdrs.c.sell_price_cents), 0),
                func.coalesce(func.sum(cdrs.c.billsec), 0),
            ).where(cdrs.c.account_id == account_id, cdrs.c.start_time >= hour_ago)
        )
    ).one()
    recent = calls.c.account_id == account_id, calls.c.created_at >= hour_ago
    placed = (
        await conn.execute(select(func.count()).select_from(calls).where(*recent))
    ).scalar_one()
    reached = (
        await conn.execute(
            select(func.count())
            .select_from(calls)
            .where(*recent, calls.c.state.not_in(("queued", "ringing")))
        )
    ).scalar_one()
    answered = (
        await conn.execute(
            select(func.count()).select_from(calls).where(*recent, calls.c.answered_at.is_not(None))
        )
    ).scalar_one()
    run = await demo_service.latest(conn, account_id)
    return {
        "sandboxTime": now,
        "sandboxTimeIso": iso(now),
        "scale": scale,
        "account": msgspec_to_dict(account_service.account_view(account)),
        "agents": tiles,
        "inFlight": [
            {**_with_rate(_call(r), r.to_number, rates), "agentLabel": labels.get(int(r.agent_id))}
            for r in flying
        ],
        "inFlightCount": int(flying_count),
        "lastHour": {
            "calls": int(placed),
            "reached": int(reached),
            "answered": int(answered),
            "spendCents": int(spent[0]),
            "talkSec": int(spent[1]),
        },
        "demo": None if run is None else await demo_service.view(conn, run, now),
    }


# -- charts: the last 60 minutes, one bucket a minute ------------------------------------------


def _percentile(values: list[int], p: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]


async def charts(conn: Conn, account_id: int, now: float) -> dict[str, Any]:
    """Sixty one-minute buckets of sandbox time ending with the current minute: calls by
    disposition (by start time), spend, webhook attempts (delivered or not) and their
    latency (p50, p95)."""
    bucket = 60
    first = math.floor(now / bucket) * bucket - 59 * bucket
    n = 60

    def index(ts: float) -> int | None:
        i = int((ts - first) // bucket)
        return i if 0 <= i < n else None

    by_disp: list[Counter[str]] = [Counter() for _ in range(n)]
    spend = [0] * n
    for start, disp, cents in (
        await conn.execute(
            select(cdrs.c.start_time, cdrs.c.disposition, cdrs.c.sell_price_cents).where(
                cdrs.c.account_id == account_id, cdrs.c.start_time >= first
            )
        )
    ).all():
        i = index(start)
        if i is not None:
            by_disp[i][disp] += 1
            spend[i] += int(cents)
    ok = [0] * n
    failed = [0] * n
    latencies: list[list[int]] = [[] for _ in range(n)]
    for at, outcome, latency in (
        await conn.execute(
            select(
                delivery_attempts.c.attempted_at,
                delivery_attempts.c.outcome,
                delivery_attempts.c.latency_ms,
            )
            .join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
            .where(deliveries.c.account_id == account_id, delivery_attempts.c.attempted_at >= first)
        )
    ).all():
        i = index(at)
        if i is None:
            continue
        if outcome == "delivered":
            ok[i] += 1
        else:
            failed[i] += 1
        latencies[i].append(int(latency))
    every = [x for bucket_latencies in latencies for x in bucket_latencies]
    return {
        "from": first,
        "to": first + n * bucket,
        "now": now,
        "bucketSec": bucket,
        "calls": {d: [c[d] for c in by_disp] for d in DISPOSITIONS},
        "spendCents": spend,
        "attempts": {"delivered": ok, "failed": failed},
        "latencyMs": {
            "p50": [_percentile(x, 0.5) for x in latencies],
            "p95": [_percentile(x, 0.95) for x in latencies],
        },
        "totals": {
            "calls": sum(sum(c.values()) for c in by_disp),
            "spendCents": sum(spend),
            "delivered": sum(ok),
            "failed": sum(failed),
            "latencyP50": _percentile(every, 0.5),
            "latencyP95": _percentile(every, 0.95),
        },
    }


# -- paginated tables ----------------------------------------------------------------------------


async def calls_page(
    conn: Conn,
    account_id: int,
    offset: int,
    limit: int,
    rates: RateTable,
    in_flight: bool = False,
) -> dict[str, Any]:
    offset, limit = _page(offset, limit)
    where = [calls.c.account_id == account_id]
    if in_flight:
        where.append(calls.c.state != "ended")
    total = (await conn.execute(select(func.count()).select_from(calls).where(*where))).scalar_one()
    rows = (
        await conn.execute(
            select(calls, agents.c.label.label("agent_label"))
            .join(agents, agents.c.id == calls.c.agent_id, isouter=True)
            .where(*where)
            .order_by(calls.c.created_at.desc(), calls.c.seq.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    items = []
    for r in rows:
        view = _with_rate(_call(r), r.to_number, rates)
        view["agentLabel"] = r.agent_label
        items.append(view)
    return {"total": int(total), "offset": offset, "limit": limit, "items": items}


async def deliveries_page(
    conn: Conn, account_id: int, offset: int, limit: int, status: str | None
) -> dict[str, Any]:
    offset, limit = _page(offset, limit)
    where = [deliveries.c.account_id == account_id]
    if status:
        where.append(deliveries.c.status == status)
    total = (
        await conn.execute(select(func.count()).select_from(deliveries).where(*where))
    ).scalar_one()
    ids = (
        await conn.execute(
            select(deliveries.c.id)
            .where(*where)
            .order_by(deliveries.c.created_at.desc(), deliveries.c.id)
            .offset(offset)
            .limit(limit)
        )
    ).scalars()
    items = []
    for delivery_id in list(ids):
        items.extend(await _deliveries(conn, delivery_id))
    return {"total": int(total), "offset": offset, "limit": limit, "items": items}


async def _deliveries(conn: Conn, delivery_id: str) -> list[dict[str, Any]]:
    found = await delivery_service.listing(
        conn,
        hook_id=None,
        status=None,
        event=None,
        account_id=None,
        limit=1,
        delivery_id=delivery_id,
    )
    for d in found:
        for attempt in d["attempts"]:
            attempt["signature"] = _verdict(d["targetUrl"], attempt.get("responseBody"))
        d["inbox"] = _inbox_of(d["targetUrl"])
        payload = d.get("payload") or {}
        d["callId"] = payload.get("callId") if isinstance(payload, dict) else None
    return found


def _cdr(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "callId": r.call_id,
        "startTime": iso(r.start_time),
        "duration": r.duration,
        "billsec": r.billsec,
        "src": r.src,
        "dst": r.dst,
        "disposition": r.disposition,
        "sipUsername": r.sip_username,
        "sellPriceCents": r.sell_price_cents,
        "currency": r.currency,
        "country": r.country,
        "did": r.did,
    }


async def cdrs_page(
    conn: Conn,
    account_id: int,
    offset: int,
    limit: int,
    disposition: str | None,
    country: str | None,
) -> dict[str, Any]:
    offset, limit = _page(offset, limit)
    where = [cdrs.c.account_id == account_id]
    if disposition:
        where.append(cdrs.c.disposition == disposition)
    if country:
        where.append(cdrs.c.country == country)
    total = (await conn.execute(select(func.count()).select_from(cdrs).where(*where))).scalar_one()
    rows = (
        await conn.execute(
            select(cdrs)
            .where(*where)
            .order_by(cdrs.c.start_time.desc(), cdrs.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    countries = sorted(
        (
            await conn.execute(
                select(cdrs.c.country).where(cdrs.c.account_id == account_id).distinct()
            )
        )
        .scalars()
        .all()
    )
    return {
        "total": int(total),
        "offset": offset,
        "limit": limit,
        "items": [_cdr(r) for r in rows],
        "countries": countries,
    }


async def account_details(conn: Conn, account_id: int) -> dict[str, Any]:
    """The account with its agents, tokens (prefix only) and hooks."""
    account = await account_service.get(conn, account_id)
    agent_rows = (
        await conn.execute(
            select(agents).where(agents.c.account_id == account_id).order_by(agents.c.id)
        )
    ).all()
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
            .limit(100)
        )
    ).all()
    return {
        "account": msgspec_to_dict(account_service.account_view(account)),
        "agents": [
            {
                "id": str(a.id),
                "label": a.label,
                "sipUsername": a.sip_username,
                "provisioned": bool(a.provisioned),
            }
            for a in agent_rows
        ],
        "tokens": [
            {
                "id": t.id,
                "prefix": t.prefix,
                "kind": t.kind,
                "scopes": t.scopes.split(),
                "expiresAt": _ts(t.expires_at),
                "revoked": t.revoked_at is not None,
            }
            for t in token_rows
        ],
        "hooks": [
            {"id": h.id, "event": h.event, "targetUrl": h.target_url, "active": h.active}
            for h in hook_rows
        ],
    }


# -- a call's whole story ------------------------------------------------------------------------


def _inbox_of(target_url: str) -> str | None:
    """The built-in inbox a hook targets, if it does."""
    path = target_url.split("?", 1)[0]
    at = path.find(INBOX_PATH)
    if at < 0:
        return None
    name = path[at + len(INBOX_PATH) :]
    return name or None


def _verdict(target_url: str, response_body: str | None) -> str | None:
    """The signature verdict of one attempt, when the receiver was the built-in inbox (it
    checks every signature and says so in its answer); None for other receivers."""
    if _inbox_of(target_url) is None or not response_body:
        return None
    try:
        answer = json.loads(response_body)
    except ValueError:
        return None
    verdict = answer.get("signature") if isinstance(answer, dict) else None
    return verdict if isinstance(verdict, str) else None


# Order of what happens at the same sandbox instant: a call's end emits its events, then
# the CDR is written; webhook attempts come after.
_RANK = {
    "queued": 0,
    "ringing": 1,
    "answered": 2,
    "busy": 2,
    "no_answer": 2,
    "failed": 2,
    "event": 3,
    "ended": 4,
    "cdr": 5,
    "call.ended": 6,
    "attempt": 7,
}
_EVENT_LABELS = {
    "call.transferred": "transferred to a human",
    "disposition.set": "disposition set",
    "dnc.added": "added to the do-not-call list",
    "lead.completed": "lead completed",
    "call.ended": "call.ended emitted",
}


async def story(conn: Conn, call_id: str, now: float, rates: RateTable) -> dict[str, Any]:
    """Everything about one call in the order it happened: its states with sandbox
    timestamps, the events it emitted, the CDR, and every webhook attempt."""
    row = (await conn.execute(select(calls).where(calls.c.id == call_id))).first()
    if row is None:
        raise NotFound(f"No call {call_id!r}.")
    agent = (
        await conn.execute(
            select(agents.c.label, agents.c.sip_username).where(agents.c.id == row.agent_id)
        )
    ).first()
    call = _with_rate(_call(row), row.to_number, rates)
    call.update(
        customerId=str(row.account_id),
        fromNumber=row.from_number,
        agentLabel=None if agent is None else agent.label,
        ringingAt=_ts(row.ringing_at),
        answeredAt=_ts(row.answered_at),
    )
    timeline: list[dict[str, Any]] = [
        {"kind": "state", "state": "queued", "at": row.created_at, "label": "queued"}
    ]
    if row.ringing_at is not None:
        timeline.append(
            {"kind": "state", "state": "ringing", "at": row.ringing_at, "label": "ringing"}
        )
    if row.answered_at is not None:
        timeline.append(
            {"kind": "state", "state": "answered", "at": row.answered_at, "label": "answered"}
        )
    if row.state in ("busy", "no_answer", "failed") or (
        row.state == "ended" and row.outcome != "answered"
    ):
        at = row.ended_at if row.ended_at is not None else row.updated_at
        label = row.outcome.replace("_", " ")
        timeline.append({"kind": "state", "state": row.outcome, "at": at, "label": label})
    if row.ended_at is not None:
        timeline.append({"kind": "state", "state": "ended", "at": row.ended_at, "label": "ended"})
    event_rows = (
        await conn.execute(
            select(events.c.id, events.c.type, events.c.payload, events.c.created_at)
            .where(events.c.call_id == call_id)
            .order_by(events.c.created_at)
        )
    ).all()
    event_list = []
    for e in event_rows:
        event_list.append(
            {
                "id": e.id,
                "event": e.type,
                "createdAt": iso(e.created_at),
                "body": json.loads(e.payload),
            }
        )
        timeline.append(
            {
                "kind": "event",
                "event": e.type,
                "at": e.created_at,
                "label": _EVENT_LABELS.get(e.type, e.type),
                "rank": "call.ended" if e.type == "call.ended" else "event",
            }
        )
    cdr_row = (await conn.execute(select(cdrs).where(cdrs.c.call_id == call_id))).first()
    cdr = None if cdr_row is None else _cdr(cdr_row)
    if cdr_row is not None and row.ended_at is not None:
        timeline.append(
            {
                "kind": "cdr",
                "at": row.ended_at,
                "label": f"CDR {cdr_row.id} written: {cdr_row.disposition}, "
                f"{cdr_row.billsec} s billed, {cdr_row.sell_price_cents}¢",
            }
        )
    delivery_list: list[dict[str, Any]] = []
    event_ids = [e.id for e in event_rows]
    if event_ids:
        ids = (
            await conn.execute(
                select(deliveries.c.id)
                .where(deliveries.c.event_id.in_(event_ids))
                .order_by(deliveries.c.created_at, deliveries.c.id)
            )
        ).scalars()
        for delivery_id in list(ids):
            delivery_list.extend(await _deliveries(conn, delivery_id))
    attempt_rows: list[Any] = []
    if delivery_list:
        result = await conn.execute(
            select(
                delivery_attempts.c.delivery_id,
                delivery_attempts.c.number,
                delivery_attempts.c.attempted_at,
            ).where(delivery_attempts.c.delivery_id.in_([d["id"] for d in delivery_list]))
        )
        attempt_rows = list(result.all())
    attempted_at = {(a.delivery_id, a.number): a.attempted_at for a in attempt_rows}
    messages = await _messages_for([d["id"] for d in delivery_list], conn)
    for d in delivery_list:
        d["inboxMessages"] = messages.get(d["id"], [])
        for attempt in d["attempts"]:
            status = (
                attempt["statusCode"] if attempt["statusCode"] is not None else attempt["error"]
            )
            verdict = attempt.get("signature")
            timeline.append(
                {
                    "kind": "attempt",
                    "at": attempted_at.get((d["id"], attempt["number"]), 0.0),
                    "label": f"{d['event']} → attempt #{attempt['number']}: {status}, "
                    f"{attempt['latencyMs']} ms" + (f", signature {verdict}" if verdict else ""),
                    "deliveryId": d["id"],
                    "outcome": attempt["outcome"],
                }
            )
    timeline.sort(key=lambda x: (x["at"], _RANK[x.get("rank") or x.get("state") or x["kind"]]))
    for entry in timeline:
        entry.pop("rank", None)
        entry["atIso"] = iso(entry["at"])
    return {
        "call": call,
        "timeline": timeline,
        "cdr": cdr,
        "events": event_list,
        "deliveries": delivery_list,
        "sandboxTime": now,
    }


async def _messages_for(delivery_ids: list[str], conn: Conn) -> dict[str, list[Any]]:
    if not delivery_ids:
        return {}
    rows = (
        await conn.execute(
            select(
                inbox_messages.c.id,
                inbox_messages.c.inbox,
                inbox_messages.c.delivery_id,
                inbox_messages.c.signature,
                inbox_messages.c.received_at,
            )
            .where(inbox_messages.c.delivery_id.in_(delivery_ids))
            .order_by(inbox_messages.c.id)
        )
    ).all()
    out: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        out[r.delivery_id].append(
            {
                "id": r.id,
                "inbox": r.inbox,
                "signature": r.signature,
                "receivedAt": iso(r.received_at),
            }
        )
    return out


# -- the webhook inbox ---------------------------------------------------------------------------


async def inbox_names(conn: Conn) -> list[dict[str, Any]]:
    rows = (
        await conn.execute(
            select(
                inbox_messages.c.inbox,
                func.count(),
                func.max(inbox_messages.c.received_at),
            ).group_by(inbox_messages.c.inbox)
        )
    ).all()
    found = {r[0]: {"name": r[0], "count": int(r[1]), "lastReceivedAt": iso(r[2])} for r in rows}
    for name, status in (await conn.execute(select(inboxes.c.name, inboxes.c.status))).all():
        found.setdefault(name, {"name": name, "count": 0, "lastReceivedAt": None})
        found[name]["status"] = int(status)
    return sorted(found.values(), key=lambda x: x["lastReceivedAt"] or "", reverse=True)


def _signature_header(headers: dict[str, Any]) -> str | None:
    value = headers.get("x-unlimcall-signature")
    return value if isinstance(value, str) else None


def _summary(r: Any) -> dict[str, Any]:
    headers = json.loads(r.headers)
    body = parse_body(r.body)[0]
    return {
        "id": r.id,
        "inbox": r.inbox,
        "receivedAt": iso(r.received_at),
        "method": r.method,
        "event": headers.get("x-unlimcall-event"),
        "deliveryId": r.delivery_id,
        "signature": r.signature,
        "answered": r.answered,
        "callId": body.get("callId") if isinstance(body, dict) else None,
        "bytes": len(r.body.encode("utf-8")),
    }


async def inbox_page(conn: Conn, name: str, offset: int, limit: int) -> dict[str, Any]:
    offset, limit = _page(offset, limit)
    total = (
        await conn.execute(
            select(func.count()).select_from(inbox_messages).where(inbox_messages.c.inbox == name)
        )
    ).scalar_one()
    rows = (
        await conn.execute(
            select(inbox_messages)
            .where(inbox_messages.c.inbox == name)
            .order_by(inbox_messages.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
    ).all()
    return {
        "inbox": name,
        "total": int(total),
        "offset": offset,
        "limit": limit,
        "items": [_summary(r) for r in rows],
    }


async def inbox_message(conn: Conn, message_id: int) -> dict[str, Any]:
    """One arrival: headers, raw body, the body as JSON, the signature's verdict and what
    it was checked with, and the delivery it belongs to."""
    r = (
        await conn.execute(select(inbox_messages).where(inbox_messages.c.id == message_id))
    ).first()
    if r is None:
        raise NotFound(f"No inbox message {message_id}.")
    headers: dict[str, Any] = json.loads(r.headers)
    out = _summary(r)
    parsed, is_json = parse_body(r.body)
    if not is_json:
        parsed = None
    signed_at = None
    header = _signature_header(headers)
    if header:
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key == "t" and value.isdigit():
                signed_at = int(value)
    delivery = None
    if r.delivery_id:
        found = await _deliveries(conn, r.delivery_id)
        if found:
            d = found[0]
            delivery = {
                "id": d["id"],
                "hookId": d["hookId"],
                "event": d["event"],
                "status": d["status"],
                "customerId": d["customerId"],
                "attempts": len(d["attempts"]),
                "targetUrl": d["targetUrl"],
            }
    out.update(
        headers=headers,
        rawBody=r.body,
        json=parsed if is_json else None,
        isJson=is_json,
        signatureHeader=header,
        signedAt=None if signed_at is None else iso(signed_at),
        delivery=delivery,
    )
    return out


# -- the account overview and the live stream's changes -------------------------------------------


async def overview(
    conn: Conn,
    reads: Database,
    account_id: int,
    now: float,
    disposition: str | None,
    country: str | None,
) -> dict[str, Any]:
    """``GET /_sandbox/accounts/{id}/overview``: one account at a glance (kept for scripts;
    the dashboard reads the narrower models above)."""
    details = await account_details(conn, account_id)
    account_agents = await account_service.list_agents(reads, account_id)
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
    chart = await charts(conn, account_id, now)
    return {
        "account": details["account"],
        "agents": [msgspec_to_dict(a) for a in account_agents],
        "tokens": details["tokens"],
        "hooks": details["hooks"],
        "cdrs": cdr_list,
        "countries": countries,
        "calls": await recent_calls(conn, account_id),
        "deliveries": await delivery_service.listing(
            conn, hook_id=None, status=None, event=None, account_id=account_id, limit=50
        ),
        "charts": chart,
        "sandboxTime": iso(now),
    }


async def changes(conn: Conn, account_id: int, since: float, stored_since: float) -> dict[str, Any]:
    """Calls and deliveries of this account that changed after ``since`` (sandbox time),
    and deliveries with an attempt stored after wall time ``stored_since`` (the live
    stream's ticks are real time)."""
    changed_calls = await recent_calls(conn, account_id, limit=200, since=since)
    touched = (
        (
            await conn.execute(
                select(delivery_attempts.c.delivery_id)
                .join(deliveries, deliveries.c.id == delivery_attempts.c.delivery_id)
                .where(
                    deliveries.c.account_id == account_id,
                    delivery_attempts.c.recorded_at > stored_since,
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
        items.extend(await _deliveries(conn, delivery_id))
    return {"calls": changed_calls, "deliveries": items}


def encode(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
