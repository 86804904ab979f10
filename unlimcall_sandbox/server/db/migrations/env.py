"""Alembic environment: runs on the connection ``unlimcall_sandbox.server.db.migrate`` hands over.

For ``alembic revision --autogenerate`` by hand, set ``sqlalchemy.url`` to a sync URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from unlimcall_sandbox.server.db.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
