"""Schema migrations over existing data: a database written by an older revision is
upgraded at start-up and serves the same answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from alembic import command
from sqlalchemy import Connection, select, text

from tests.support.sandbox import fresh_database, fresh_redis_url, make_settings
from unlimcall_sandbox.server import demo_data, ids
from unlimcall_sandbox.server.db.engine import dispose, make_engine, write
from unlimcall_sandbox.server.db.migrate import alembic_config, migrate
from unlimcall_sandbox.server.db.tables import cdrs
from unlimcall_sandbox.server.services.cdrs import to_struct, wire_of

OLD_ROWS = [
    ("1764000000.1", 1764000000.0, 75, 60, "+14155550100", "+4930123456", "ANSWERED", None),
    ("1764000300.2", 1764000300.0, 12, 0, "+14155550100", "+14155551234", "NO ANSWER", "+1415"),
    ("1764000300.3", 1764000300.0, 30, 21, "+14155550100", "+33142341234", "ANSWERED", None),
]


def _to(revision: str) -> Any:
    def upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    return upgrade


async def test_0004_gives_existing_cdrs_their_wire_json(backend: str, tmp_path: Path) -> None:
    async with fresh_database(backend, tmp_path) as db_url:
        settings = make_settings(tmp_path, db_url, await fresh_redis_url(backend))
        engine = make_engine(settings)
        try:
            async with write(engine) as conn:
                await conn.run_sync(_to("0003"))
                await conn.execute(
                    text(
                        "INSERT INTO accounts (id, company_name, primary_contact_email, status,"
                        " provisioned, dialer_enabled, engine_configured, account_type,"
                        " balance_e4, credit_limit_e4, currency, balance_upstream, created_at)"
                        " VALUES (5001, 'Old Co', 'o@example.com', 'active', true, true, true,"
                        " 'prepaid', 0, NULL, 'EUR', 'ok', 0)"
                    )
                )
                for cid, start, duration, billsec, src, dst, disposition, did in OLD_ROWS:
                    await conn.execute(
                        text(
                            "INSERT INTO cdrs (id, account_id, call_id, start_time, duration,"
                            " billsec, src, dst, disposition, sip_username, sell_price_cents,"
                            " currency, country, did) VALUES (:id, 5001, NULL, :start, :duration,"
                            " :billsec, :src, :dst, :disposition, 'unl_\u00e9', 7, 'EUR',"
                            " 'Côte d’Ivoire', :did)"
                        ),
                        {
                            "id": cid,
                            "start": start,
                            "duration": duration,
                            "billsec": billsec,
                            "src": src,
                            "dst": dst,
                            "disposition": disposition,
                            "did": did,
                        },
                    )
            await migrate(engine)
            async with write(engine) as conn:
                rows = (await conn.execute(select(cdrs).order_by(cdrs.c.id))).mappings().all()
        finally:
            await dispose(engine)
    assert [r["id"] for r in rows] == [r[0] for r in OLD_ROWS]
    for row in rows:
        assert row["wire"] == wire_of(dict(row))
        values = [row[c] for c in ("id", "start_time", "duration", "billsec", "src", "dst")]
        values += [row[c] for c in ("disposition", "sip_username", "sell_price_cents")]
        values += [row[c] for c in ("currency", "country", "did")]
        assert msgspec.json.decode(row["wire"]) == msgspec.to_builtins(to_struct(values))


async def test_0009_continues_the_numbers_the_counters_handed_out(
    backend: str, tmp_path: Path
) -> None:
    """Sequences (PostgreSQL) start past what the counters rows had given; SQLite keeps
    the rows. Either way the next call, hook, event and demo number follows on, and a
    reset starts every one from 1 again."""
    async with fresh_database(backend, tmp_path) as db_url:
        settings = make_settings(tmp_path, db_url, await fresh_redis_url(backend))
        engine = make_engine(settings)
        try:
            async with write(engine) as conn:
                await conn.run_sync(_to("0008"))
                for i, name in enumerate(ids.SEQUENCES):
                    await conn.execute(
                        text("INSERT INTO counters (name, value) VALUES (:name, :value)"),
                        {"name": name, "value": 40 + i},
                    )
            await migrate(engine)
            async with write(engine) as conn:
                after = [await ids.next_id(conn, name) for name in ids.SEQUENCES]
                again = await ids.next_id(conn, "call")
            async with write(engine) as conn:
                await demo_data.wipe(conn)
            async with write(engine) as conn:
                restarted = [await ids.next_id(conn, name) for name in ids.SEQUENCES]
        finally:
            await dispose(engine)
    assert after == [41, 42, 43, 44]
    assert again == 42
    assert restarted == [1, 1, 1, 1]
