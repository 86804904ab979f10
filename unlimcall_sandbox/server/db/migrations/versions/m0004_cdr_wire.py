"""cdrs: the row's contract JSON, encoded once at insert; index on (account, start, id);
deliveries: index on event_id

``GET /v1/cdrs`` answers by joining these strings: decoding 12 columns per row into Python
objects cost more than the indexed query itself. The index now covers the whole ORDER BY
(start time, then id), so no sort step remains. A new event's deliveries are sent by one
job, which finds them by ``event_id``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 14:05:00
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BATCH = 5000
_KEYS = (
    "id",
    "startTime",
    "duration",
    "billsec",
    "src",
    "dst",
    "disposition",
    "sipUsername",
    "sellPriceCents",
    "currency",
    "country",
    "did",
)


def _wire(row: Any) -> str:
    """The CDR as the contract renders it (a frozen copy of the encoding at this revision;
    the application's own encoder is ``unlimcall_sandbox.server.services.cdrs.wire_of``)."""
    values = list(row)
    values[1] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(values[1]))
    return msgspec.json.encode(dict(zip(_KEYS, values, strict=True))).decode()


def upgrade() -> None:
    # Nullable in the schema (adding a NOT NULL column would copy the table on SQLite);
    # every row has one once this revision has run, and every insert writes one.
    op.add_column("cdrs", sa.Column("wire", sa.Text(), nullable=True))
    conn = op.get_bind()
    cdrs = sa.table(
        "cdrs",
        *(
            sa.column(name)
            for name in (
                "id",
                "start_time",
                "duration",
                "billsec",
                "src",
                "dst",
                "disposition",
                "sip_username",
                "sell_price_cents",
                "currency",
                "country",
                "did",
                "wire",
            )
        ),
    )
    columns = [c for c in cdrs.c if c.name != "wire"]
    while True:
        rows = conn.execute(sa.select(*columns).where(cdrs.c.wire.is_(None)).limit(_BATCH)).all()
        if not rows:
            break
        conn.execute(
            cdrs.update().where(cdrs.c.id == sa.bindparam("cid")),
            [{"cid": r[0], "wire": _wire(r)} for r in rows],
        )
    op.drop_index("ix_cdrs_account_start", table_name="cdrs")
    op.create_index("ix_cdrs_account_start_id", "cdrs", ["account_id", "start_time", "id"])
    op.create_index("ix_deliveries_event", "deliveries", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_event", table_name="deliveries")
    op.drop_index("ix_cdrs_account_start_id", table_name="cdrs")
    op.create_index("ix_cdrs_account_start", "cdrs", ["account_id", "start_time"])
    with op.batch_alter_table("cdrs") as batch:
        batch.drop_column("wire")
