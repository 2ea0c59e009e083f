"""Alembic's environment for the store: runs on the connection ``gateway.store.migrate`` hands
over in ``config.attributes["connection"]`` (online only: no SQL-script mode, no alembic.ini,
no logging setup: the caller's logging stays as it is)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

connection = context.config.attributes.get("connection")
if not isinstance(connection, sa.Connection):
    raise RuntimeError("run migrations through gateway.store.migrate (it passes a connection)")

# render_as_batch: SQLite alters tables by copying them; batch mode does that for later revisions.
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
