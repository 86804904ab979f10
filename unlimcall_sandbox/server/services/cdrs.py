"""Call detail records: the ``/cdrs`` window query, seeded history, and the one insert that
ends a call. All CDR SQL lives here."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import msgspec
import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from sqlalchemy import bindparam, select

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.port import Conn, Database
from unlimcall_sandbox.server.db.tables import agents, cdrs
from unlimcall_sandbox.server.errors import (
    InvalidInput,
    InvalidTimestamp,
    TillMustBeAfterFrom,
    WindowTooWide,
)
from unlimcall_sandbox.server.ids import next_counter
from unlimcall_sandbox.server.lifecycle import DISPOSITIONS, plan_call
from unlimcall_sandbox.server.rating import RateTable, price_cents, region_of
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
    reads: Database, account_id: int, start: float, till: float, limit: int
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


async def cdr_ids(conn: Conn, n: int) -> int:
    """Reserve ``n`` CDR sequence numbers; returns the first."""
    last = await next_counter(conn, "cdr", n)
    return last - n + 1


def cdr_id(start_time: float, seq: int) -> str:
    """Asterisk-style uniqueid: ``<unix seconds>.<sequence>``."""
    return f"{int(start_time)}.{seq}"


async def insert_one(conn: Conn, values: dict[str, Any]) -> None:
    await conn.run(_INSERT, {**values, "wire": wire_of(values)})


_INSERT = cdrs.insert()


# Destination countries of generated history: the rate table's, and a few it prices as
# "International" (their names come from the number all the same).
DESTINATION_REGIONS: Sequence[str] = (
    "US", "CA", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "UA", "AU", "IN", "BR", "MX", "JP",
    "IE", "SE", "NZ", "ZA", "SG",
)  # fmt: skip
_POOL_PER_TYPE = 100
_VARIED_DIGITS = 4
# The share of a line's calls that go to its own country (the rest: anywhere above).
_DOMESTIC = 0.6


@cache
def destination_pool(region: str) -> tuple[str, ...]:
    """Numbers valid for ``region``: its example fixed-line and mobile numbers (phonenumbers'
    metadata) with the last digits varied, each checked with ``is_valid_number`` and
    ``region_code_for_number``. A fixed sequence: the same pool in every process."""
    rng = random.Random(f"destinations:{region}")
    pool: list[str] = []
    for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        head = phonenumbers.format_number(example, PhoneNumberFormat.E164)[:-_VARIED_DIGITS]
        found: dict[str, None] = {}
        for _ in range(_POOL_PER_TYPE * 4):
            number = head + str(rng.randrange(10**_VARIED_DIGITS)).zfill(_VARIED_DIGITS)
            parsed = phonenumbers.parse(number)
            if (
                phonenumbers.is_valid_number(parsed)
                and phonenumbers.region_code_for_number(parsed) == region
            ):
                found[number] = None
                if len(found) == _POOL_PER_TYPE:
                    break
        pool += found
    if not pool:  # pragma: no cover - every region above has example numbers
        raise ValueError(f"no example numbers for {region}")
    return tuple(pool)


@dataclass(frozen=True)
class GenerationPlan:
    """What a generation of ``count`` CDRs needs once validated and its ids reserved: pure
    data, so rows can be built anywhere (a thread, a later job) from it."""

    account_id: int
    count: int
    start: float
    till: float
    first_seq: int
    currency: str
    choices: tuple[tuple[str, str, str | None], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "count": self.count,
            "start": self.start,
            "till": self.till,
            "firstSeq": self.first_seq,
            "currency": self.currency,
            "choices": [list(c) for c in self.choices],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationPlan:
        return cls(
            account_id=int(data["accountId"]),
            count=int(data["count"]),
            start=float(data["start"]),
            till=float(data["till"]),
            first_seq=int(data["firstSeq"]),
            currency=str(data["currency"]),
            choices=tuple((str(a), str(b), c) for a, b, c in data["choices"]),
        )


async def plan_generation(
    conn: Conn, account_id: int, count: int, start: float, till: float, currency: str
) -> GenerationPlan:
    """Validate a generation and reserve its ``count`` CDR ids."""
    if not 1 <= count <= MAX_GENERATE:
        raise InvalidInput(f"count must be between 1 and {MAX_GENERATE}.")
    if till <= start:
        raise TillMustBeAfterFrom()
    # Calls are placed by provisioned lines only (an account without one: a placeholder).
    agent_rows = (
        await conn.execute(
            select(agents.c.sip_username, agents.c.caller_id, agents.c.did)
            .where(agents.c.account_id == account_id, agents.c.provisioned.is_(True))
            .order_by(agents.c.id)
        )
    ).all()
    choices = tuple((str(a), str(b), c) for a, b, c in agent_rows) or (
        ("unl_000", "+14155550100", None),
    )
    first_seq = await cdr_ids(conn, count)
    return GenerationPlan(account_id, count, start, till, first_seq, currency, choices)


def build_rows(
    plan: GenerationPlan,
    offset: int,
    n: int,
    seed: int,
    rates: RateTable,
    rng: random.Random | None = None,
) -> list[dict[str, Any]]:
    """Rows ``offset .. offset+n-1`` of a generation: pure CPU, safe in a thread. Without
    ``rng``, the chunk draws from its own seeded source (chunks are then independent:
    a job resumed after a crash builds the same rows)."""
    if rng is None:
        rng = random.Random(f"{seed}:cdrgen:{plan.account_id}:{plan.first_seq + offset}")
    choices = plan.choices
    homes = [region_of(caller_id) for _, caller_id, _ in choices]
    # One rate per country: every number of a region's pool has that region.
    country_rates = {r: rates.rate_for(destination_pool(r)[0]) for r in DESTINATION_REGIONS}
    span = plan.till - plan.start
    rows: list[dict[str, Any]] = []
    for i in range(offset, offset + n):
        line = rng.randrange(len(choices))
        sip_username, caller_id, did = choices[line]
        region = homes[line] if rng.random() < _DOMESTIC else rng.choice(DESTINATION_REGIONS)
        if region not in country_rates:
            region = rng.choice(DESTINATION_REGIONS)
        dst = rng.choice(destination_pool(region))
        plan_ = plan_call(seed, -(plan.first_seq + i), dst)
        start_time = float(int(plan.start + rng.random() * span))
        billsec = plan_.talk_sec
        rate = country_rates[region]
        row: dict[str, Any] = {
            "id": cdr_id(start_time, plan.first_seq + i),
            "account_id": plan.account_id,
            "call_id": None,
            "start_time": start_time,
            "duration": plan_.ring_sec + plan_.talk_sec,
            "billsec": billsec,
            "src": caller_id,
            "dst": dst,
            "disposition": DISPOSITIONS[plan_.outcome],
            "sip_username": sip_username,
            "sell_price_cents": price_cents(billsec, rate.cents_per_minute),
            "currency": plan.currency,
            "country": rate.country,
            "did": did,
        }
        row["wire"] = wire_of(row)
        rows.append(row)
    return rows


async def generate(
    conn: Conn,
    account_id: int,
    count: int,
    start: float,
    till: float,
    seed: int,
    rates: RateTable,
    currency: str,
) -> int:
    """Insert ``count`` seeded CDRs with start times spread over [start, till], in one
    transaction (the demo data; the control plane runs a job: ``services.bulk``)."""
    plan = await plan_generation(conn, account_id, count, start, till, currency)
    rng = random.Random(f"{seed}:cdrgen:{account_id}:{plan.first_seq}")
    for offset in range(0, count, 5000):
        n = min(5000, count - offset)
        await conn.execute(cdrs.insert(), build_rows(plan, offset, n, seed, rates, rng))
    return count
