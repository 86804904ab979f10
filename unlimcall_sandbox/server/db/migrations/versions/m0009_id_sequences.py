"""id sequences: call, hook, event and demo-run numbers from PostgreSQL sequences

Every origination used to upsert one shared ``counters`` row, so all originations of all
processes queued on its lock. On PostgreSQL these numbers now come from sequences
(``nextval`` takes no row lock and is never rolled back), started past what the counters
row had handed out. SQLite keeps the ``counters`` rows: it has one writer anyway.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 05:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# ``ids.SEQUENCES`` at this revision (a migration never imports the code it migrates).
_NAMES = ("call", "hook", "event", "demo")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name in _NAMES:
        # CACHE 1: every connection sees the next number, so the same seed and the same
        # requests in one process give the same ids.
        op.execute(f"CREATE SEQUENCE id_seq_{name} AS BIGINT MINVALUE 1 START 1 CACHE 1")
        last = bind.execute(
            sa.text("SELECT value FROM counters WHERE name = :name"), {"name": name}
        ).scalar_one_or_none()
        if last:
            bind.execute(
                sa.text("SELECT setval(CAST(:seq AS regclass), :last)"),
                {"seq": f"id_seq_{name}", "last": int(last)},
            )
        bind.execute(sa.text("DELETE FROM counters WHERE name = :name"), {"name": name})


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name in _NAMES:
        bind.execute(
            sa.text(
                "INSERT INTO counters (name, value) SELECT :name, v FROM"
                " (SELECT pg_sequence_last_value(CAST(:seq AS regclass)) AS v) AS s"
                " WHERE v IS NOT NULL"
            ),
            {"name": name, "seq": f"id_seq_{name}"},
        )
        op.execute(f"DROP SEQUENCE id_seq_{name}")
