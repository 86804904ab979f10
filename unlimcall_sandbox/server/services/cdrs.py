"""Call detail records: the ``/cdrs`` window query, seeded history, and the one insert that
ends a call. All CDR SQL lives here."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.fastread import FastReads
from unlimcall_sandbox.server.db.fastsql import run
from unlimcall_sandbox.server.db.tables import agents, cdrs
from unlimcall_sandbox.server.errors import (
    InvalidInput,
    InvalidTimestamp,
    TillMustBeAfterFrom,
    WindowTooWide,
)
from unlimcall_sandbox.server.ids import next_counter
from unlimcall_sandbox.server.lifecycle import DISPOSITIONS, plan_call
from unlimcall_sandbox.server.rating import RateTable, price_cents
from unlimcall_sandbox.server.structs import Cdr

DAY = 86400.0
MAX_WINDOW = 31 * DAY
DEFAULT_WINDOW = DAY
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_GENERATE = 2_000_000

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(raw: str) -> float:
    """RFC 3339 date-time (ISO 8601 with an offset or ``Z``) → unix seconds."""
    if not _RFC3339.match(raw):
        raise InvalidTimestamp(f"{raw[:64]!r} is not an ISO 8601 date-time with an offset.")
    text = raw.replace("z", "Z").replace("Z", "+00:00")
    main, dot, rest = text.partition(".")
    if dot:  # fromisoformat takes at most microseconds
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{main}.{digits.group()[:6].ljust(6, '0')}{rest[digits.end() :]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError as exc:  # e.g. month 13
        raise InvalidTimestamp(f"{raw[:64]!r} is not a valid date-time.") from exc


def parse_window(
    from_raw: str | None, till_raw: str | None, limit_raw: str | None, now: float
) -> tuple[float, float, int]:
    """The ``/cdrs`` query rules: defaults (24 h ago, now, 100), ``till`` strictly after
    ``from``, at most 31 days between them, ``limit`` an integer in 1..1000."""
    till = now if till_raw is None else parse_timestamp(till_raw)
    start = now - DEFAULT_WINDOW if from_raw is None else parse_timestamp(from_raw)
    if till <= start:
        raise TillMustBeAfterFrom()
    if till - start > MAX_WINDOW:
        raise WindowTooWide()
    return start, till, parse_limit(limit_raw)


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    text = raw.strip()
    if not re.fullmatch(r"[+-]?\d{1,10}", text):
        raise InvalidInput("limit must be an integer between 1 and 1000.")
    value = int(text)
    if not 1 <= value <= MAX_LIMIT:
        raise InvalidInput("limit must be an integer between 1 and 1000.")
    return value


_COLUMNS = (
    cdrs.c.id,
    cdrs.c.start_time,
    cdrs.c.duration,
    cdrs.c.billsec,
    cdrs.c.src,
    cdrs.c.dst,
    cdrs.c.disposition,
    cdrs.c.sip_username,
    cdrs.c.sell_price_cents,
    cdrs.c.currency,
    cdrs.c.country,
    cdrs.c.did,
)


def window_query(account_id: int, start: float, till: float, limit: int) -> Any:
    return (
        select(*_COLUMNS)
        .where(
            cdrs.c.account_id == account_id,
            cdrs.c.start_time >= start,
            cdrs.c.start_time <= till,
        )
        .order_by(cdrs.c.start_time.desc(), cdrs.c.id.desc())
        .limit(limit)
    )


def to_struct(r: Any) -> Cdr:
    return Cdr(
        id=r[0],
        startTime=iso(r[1]),
        duration=r[2],
        billsec=r[3],
        src=r[4],
        dst=r[5],
        disposition=r[6],
        sipUsername=r[7],
        sellPriceCents=r[8],
        currency=r[9],
        country=r[10],
        did=r[11],
    )


_WINDOWS: dict[int, Any] = {}


def _window_stmt(limit: int) -> Any:
    """The ``/cdrs`` query for one limit, built once: one range scan of the index on
    (account_id, start_time, id), newest first, no sort step; it reads each row's stored
    JSON (``wire``) and nothing else."""
    stmt = _WINDOWS.get(limit)
    if stmt is None:
        stmt = _WINDOWS[limit] = (
            select(cdrs.c.wire)
            .where(
                cdrs.c.account_id == bindparam("account_id"),
                cdrs.c.start_time >= bindparam("start"),
                cdrs.c.start_time <= bindparam("till"),
            )
            .order_by(cdrs.c.start_time.desc(), cdrs.c.id.desc())
            .limit(limit)
        )
    return stmt


async def window_body(
    reads: FastReads, account_id: int, start: float, till: float, limit: int
) -> bytes:
    """The whole ``/v1/cdrs`` response body (a ``CdrList``), joined from the rows' stored
    JSON: no per-row decoding or encoding."""
    rows = await reads.all(
        _window_stmt(limit), {"account_id": account_id, "start": start, "till": till}
    )
    return b'{"count":%d,"calls":[%s]}' % (len(rows), ",".join(r[0] for r in rows).encode())


_encode = msgspec.json.Encoder().encode


def wire_of(values: dict[str, Any]) -> str:
    """A CDR row's contract JSON (what ``to_struct`` of the row encodes to)."""
    return _encode(to_struct([values[c.key] for c in _COLUMNS])).decode()


async def cdr_ids(conn: AsyncConnection, n: int) -> int:
    """Reserve ``n`` CDR sequence numbers; returns the first."""
    last = await next_counter(conn, "cdr", n)
    return last - n + 1


def cdr_id(start_time: float, seq: int) -> str:
    """Asterisk-style uniqueid: ``<unix seconds>.<sequence>``."""
    return f"{int(start_time)}.{seq}"


async def insert_one(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await run(conn, _INSERT, {**values, "wire": wire_of(values)})


_INSERT = cdrs.insert()


# Destinations for generated history: (E.164 prefix, national digits to add).
_DESTINATIONS: Sequence[tuple[str, int]] = (
    ("+1415555", 4),
    ("+1212555", 4),
    ("+1312555", 4),
    ("+1416555", 4),
    ("+4420718", 5),
    ("+4416155", 5),
    ("+4930123", 5),
    ("+4989123", 5),
    ("+3314234", 5),
    ("+3491123", 5),
    ("+3906123", 5),
    ("+3120123", 5),
    ("+4822123", 5),
    ("+6129123", 5),
    ("+5511312", 6),
    ("+5255123", 5),
)


async def generate(
    conn: AsyncConnection,
    account_id: int,
    count: int,
    start: float,
    till: float,
    seed: int,
    rates: RateTable,
    currency: str,
) -> int:
    """Insert ``count`` seeded CDRs with start times spread over [start, till]."""
    if not 1 <= count <= MAX_GENERATE:
        raise InvalidInput(f"count must be between 1 and {MAX_GENERATE}.")
    if till <= start:
        raise TillMustBeAfterFrom()
    agent_rows = (
        await conn.execute(
            select(agents.c.sip_username, agents.c.caller_id, agents.c.did)
            .where(agents.c.account_id == account_id)
            .order_by(agents.c.id)
        )
    ).all()
    choices: list[Any] = list(agent_rows) or [("unl_000", "+14155550100", None)]
    first_seq = await cdr_ids(conn, count)
    rng = random.Random(f"{seed}:cdrgen:{account_id}:{first_seq}")
    span = till - start
    batch: list[dict[str, Any]] = []
    for i in range(count):
        prefix, digits = rng.choice(_DESTINATIONS)
        dst = prefix + "".join(rng.choice("0123456789") for _ in range(digits))
        plan = plan_call(seed, -(first_seq + i), dst)
        sip_username, caller_id, did = rng.choice(choices)
        start_time = float(int(start + rng.random() * span))
        billsec = plan.talk_sec
        rate = rates.rate_for(dst)
        row: dict[str, Any] = {
            "id": cdr_id(start_time, first_seq + i),
            "account_id": account_id,
            "call_id": None,
            "start_time": start_time,
            "duration": plan.ring_sec + plan.talk_sec,
            "billsec": billsec,
            "src": caller_id,
            "dst": dst,
            "disposition": DISPOSITIONS[plan.outcome],
            "sip_username": sip_username,
            "sell_price_cents": price_cents(billsec, rate.cents_per_minute),
            "currency": currency,
            "country": rate.country,
            "did": did,
        }
        row["wire"] = wire_of(row)
        batch.append(row)
        if len(batch) >= 5000:
            await conn.execute(cdrs.insert(), batch)
            batch = []
    if batch:
        await conn.execute(cdrs.insert(), batch)
    return count
