"""Copy a per-pod SQLite outbox (``DRG_PACS_OUTBOX_PATH``, before the shared store) into the store.

The old file's ``results`` table has the store's columns minus the lease (schema v1 files lack
``sender`` and ``content_sha256`` too: they come across as NULL, which the store reads as it
did). A row already in the store is left alone, so the import can run twice.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.schema import results

COLUMNS = (
    "source_sop_uid", "model_name", "model_version", "sr_sop_uid", "result_json", "sr_bytes",
    "status", "attempts", "next_attempt_at", "last_error", "created_at", "delivered_at",
)  # fmt: skip
OPTIONAL = ("sender", "content_sha256")


def import_outbox(engine: sa.Engine, path: Path) -> tuple[int, int]:
    """(rows copied, rows already in the store); the file is opened read-only."""
    if not path.is_file():
        raise FileNotFoundError(f"no outbox file at {path}")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as old:
        present = {row[1] for row in old.execute("PRAGMA table_info(results)")}
        names = [*COLUMNS, *(c for c in OPTIONAL if c in present)]
        rows = [
            dict(zip(names, row, strict=True))
            for row in old.execute(f"SELECT {', '.join(names)} FROM results")
        ]
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    copied = 0
    with engine.begin() as conn:
        for row in rows:
            copied += conn.execute(
                dialect.insert(results)
                .values(**row)
                .on_conflict_do_nothing()
                .execution_options(preserve_rowcount=True)  # else psycopg reports -1
            ).rowcount
    return copied, len(rows) - copied
