"""delivery_attempts.recorded_at: the wall time an attempt was stored

A clock advance runs every webhook retry due in its window as of its planned sandbox time
(``attempted_at``), as it does call steps. The dashboard's live stream finds new attempts
by the wall time they were stored, which this column keeps. NULL for attempts stored
before this revision.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.add_column(sa.Column("recorded_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.drop_column("recorded_at")
