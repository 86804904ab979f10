"""The schema as SQLAlchemy Core tables; Alembic migrations in ``migrations/`` create it.

Times are unix seconds as doubles: sandbox time for telephony (calls, CDRs, events,
deliveries), wall time for auth (token expiry, revocation). Money is an integer in
ten-thousandths of the currency unit (``*_e4``), so 42.7831 USD is 427831, exactly.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

clock = Table(
    "clock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("anchor_real", Float, nullable=False),
    Column("anchor_sandbox", Float, nullable=False),
    Column("scale", Float, nullable=False),
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("company_name", String(200), nullable=False),
    Column("primary_contact_email", String(320), nullable=False),
    Column("account_type", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("balance_e4", BigInteger, nullable=False),
    Column("credit_limit_e4", BigInteger, nullable=True),
    # Funds held for calls in flight (sum of their ``calls.reserved_e4``).
    Column("reserved_e4", BigInteger, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),
    Column("provisioned", Boolean, nullable=False),
    Column("dialer_enabled", Boolean, nullable=False),
    Column("engine_configured", Boolean, nullable=False),
    Column("balance_upstream", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("oauth_client_id", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Index("ix_tokens_account", "account_id"),
)

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)

agents = Table(
    "agents",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("sip_username", String(64), nullable=False, unique=True),
    Column("sip_password", String(64), nullable=False),
    Column("label", String(200), nullable=False),
    Column("caller_id", String(20), nullable=False),
    Column("did", String(20), nullable=True),
    Column("provisioned", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_agents_account", "account_id", "id"),
)

cdrs = Table(
    "cdrs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("call_id", String(36), nullable=True, unique=True),
    Column("start_time", Float, nullable=False),
    Column("duration", Integer, nullable=False),
    Column("billsec", Integer, nullable=False),
    Column("src", String(20), nullable=False),
    Column("dst", String(20), nullable=False),
    Column("disposition", String(16), nullable=False),
    Column("sip_username", String(64), nullable=False),
    Column("sell_price_cents", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("country", String(64), nullable=False),
    Column("did", String(20), nullable=True),
    # The row as the contract renders it (msgspec-encoded once, at insert): /v1/cdrs joins
    # these instead of decoding 12 columns per row. Always written; nullable only so that
    # adding it did not copy the table on SQLite (migration 0004).
    Column("wire", Text, nullable=True),
    Index("ix_cdrs_account_start_id", "account_id", "start_time", "id"),
)

calls = Table(
    "calls",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("agent_id", BigInteger, nullable=False),
    Column("to_number", String(20), nullable=False),
    Column("from_number", String(20), nullable=True),
    Column("state", String(16), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("scenario", String(16), nullable=False),
    Column("ring_sec", Integer, nullable=False),
    Column("talk_sec", Integer, nullable=False),
    Column("sentiment", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("next_step_at", Float, nullable=True),
    Column("ringing_at", Float, nullable=True),
    Column("answered_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    # What placement reserved on the account for this call; released when it ends.
    Column("reserved_e4", BigInteger, nullable=False, server_default="0"),
    Index("ix_calls_pending", "next_step_at"),
    Index("ix_calls_account", "account_id", "created_at"),
)

hooks = Table(
    "hooks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(32), nullable=False),
    Column("target_url", String(512), nullable=False),
    Column("secret", String(64), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),
    Index("ix_hooks_account_event", "account_id", "event"),
)

events = Table(
    "events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("call_id", String(36), nullable=True),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_events_call", "call_id"),
    Index("ix_events_account", "account_id", "created_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("event_id", ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    Column("hook_id", ForeignKey("hooks.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("first_attempt_at", Float, nullable=True),
    Column("next_attempt_at", Float, nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Index("ix_deliveries_due", "status", "next_attempt_at"),
    Index("ix_deliveries_hook", "hook_id"),
    Index("ix_deliveries_event", "event_id"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("delivery_id", ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("attempted_at", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("next_attempt_at", Float, nullable=True),
    Column("outcome", String(16), nullable=False),
    # Wall time the attempt was stored (``attempted_at`` is sandbox time: its planned time
    # when a clock advance made it overdue). NULL: stored before revision 0010.
    Column("recorded_at", Float, nullable=True),
    Index("ix_attempts_delivery", "delivery_id", "number", unique=True),
)

inboxes = Table(
    "inboxes",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("status", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

inbox_messages = Table(
    "inbox_messages",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("inbox", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("method", String(8), nullable=False),
    Column("headers", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("delivery_id", String(64), nullable=True),
    Column("signature", String(16), nullable=False),
    Column("answered", Integer, nullable=False),
    Column("flags", String(64), nullable=False, server_default=""),
    Index("ix_inbox_messages_inbox", "inbox", "id"),
)

bulk_jobs = Table(
    "bulk_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True),
    Column("state", String(16), nullable=False),
    Column("done", BigInteger, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("params", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
)
"""Long control-plane work run by the worker in chunks (``services.bulk``); times are
wall-clock (progress and ETA are about real waiting)."""

faults = Table(
    "faults",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("target", String(8), nullable=False),
    Column("operation", String(32), nullable=True),
    Column("account_id", BigInteger, nullable=True),
    Column("action", String(24), nullable=False),
    Column("params", Text, nullable=False),
    Column("probability", Float, nullable=False),
    Column("remaining", Integer, nullable=True),
    Column("fired", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)

# The dashboard's sign-in (migration 0005): one-time codes (``kind = "code"``) a link
# carries, exchanged once for a session (``kind = "session"``) kept in an HttpOnly cookie.
# Only SHA-256 digests are stored; ``admin_fp`` ties both to the admin token that was
# current when they were made. Times are wall time.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("admin_fp", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
)

# Demo traffic runs (migration 0005): which account and agents, until when (sandbox time),
# and the tick counter its self-re-enqueuing job claims.
demo_runs = Table(
    "demo_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", BigInteger, nullable=False),
    # The account's created_at: ids can be reused after a reset, this tells them apart.
    Column("account_created_at", Float, nullable=False),
    Column("created_account", Boolean, nullable=False),
    Column("inbox", String(64), nullable=False),
    Column("agent_ids", Text, nullable=False),
    Column("minutes", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ends_at", Float, nullable=False),
    Column("stopped_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("tick", Integer, nullable=False),
    Column("next_tick_real", Float, nullable=True),
    Column("calls_placed", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Index("ix_demo_runs_status", "status"),
)
