"""Alembic revisions, oldest first. Each creates its tables explicitly (``op.create_table``) and
never imports ``gateway.store.schema``: history must not change when the live schema does."""
