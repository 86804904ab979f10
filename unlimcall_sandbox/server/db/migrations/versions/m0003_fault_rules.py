"""fault rules

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 12:23:14.239799
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "faults",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("target", sa.String(length=8), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=True),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("fired", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faults")),
    )


def downgrade() -> None:
    op.drop_table("faults")
