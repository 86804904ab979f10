"""funds reserved for calls in flight

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("reserved_e4", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("calls") as batch:
        batch.add_column(
            sa.Column("reserved_e4", sa.BigInteger(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("reserved_e4")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("reserved_e4")
