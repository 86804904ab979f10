"""dashboard sign-in codes and sessions; demo traffic runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("admin_fp", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_dashboard_sessions")),
    )
    op.create_table(
        "demo_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("account_created_at", sa.Float(), nullable=False),
        sa.Column("created_account", sa.Boolean(), nullable=False),
        sa.Column("inbox", sa.String(length=64), nullable=False),
        sa.Column("agent_ids", sa.Text(), nullable=False),
        sa.Column("minutes", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("stopped_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("tick", sa.Integer(), nullable=False),
        sa.Column("next_tick_real", sa.Float(), nullable=True),
        sa.Column("calls_placed", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demo_runs")),
    )
    with op.batch_alter_table("demo_runs", schema=None) as batch_op:
        batch_op.create_index("ix_demo_runs_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("demo_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_demo_runs_status")
    op.drop_table("demo_runs")
    op.drop_table("dashboard_sessions")
