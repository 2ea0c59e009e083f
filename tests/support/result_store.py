"""Helpers for the results-store tests: a fresh PostgreSQL database at head with the gateway's
settings for it, and old per-pod outbox files (``DRG_PACS_OUTBOX_PATH`` before the store)."""

from __future__ import annotations

import itertools
import os
import sqlite3
from pathlib import Path

from gateway.store.config import DatabaseSettings
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from harness.postgres import PostgresServer

CONTENT = "a" * 64
DATABASES = itertools.count()


def database_name(prefix: str) -> str:
    """A database name unique in this test session."""
    return f"{prefix}_{os.getpid()}_{next(DATABASES)}"


def empty_postgres(postgres: PostgresServer, prefix: str) -> tuple[str, DatabaseSettings]:
    """A new database never upgraded: its engine URL (with password) and the gateway's
    settings (the URL without it, the password from the server's file)."""
    name = database_name(prefix)
    url = postgres.create_database(name)
    return url, DatabaseSettings(
        url=postgres.settings_url(name), password_file=postgres.password_file
    )


def fresh_postgres(postgres: PostgresServer, prefix: str) -> tuple[str, DatabaseSettings]:
    """A new database at head (``empty_postgres``, then upgraded)."""
    url, settings = empty_postgres(postgres, prefix)
    engine = make_engine(url)
    try:
        upgrade(engine)  # open() only checks PostgreSQL: the migration Job upgrades it
    finally:
        engine.dispose()
    return url, settings


OUTBOX_COLUMNS = """
    source_sop_uid   TEXT PRIMARY KEY,
    model_name       TEXT NOT NULL,
    model_version    INTEGER NOT NULL,
    sr_sop_uid       TEXT NOT NULL,
    result_json      TEXT NOT NULL,
    sr_bytes         BLOB,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    delivered_at     REAL"""
"""The outbox table as gateway/pacs/outbox.py wrote it (schema v1; v2 added two columns)."""


def outbox_file(path: Path, version: int) -> Path:
    """An old outbox file: a pending row 1.2.3 (SR b"SR", one failed attempt, created at 1)
    and a delivered row 1.2.9 without SR; v2 rows carry sender pacs-1 and digest ``CONTENT``."""
    extra = ",\n    sender TEXT,\n    content_sha256 TEXT" if version == 2 else ""
    tail = f", 'pacs-1', '{CONTENT}'" if version == 2 else ""
    db = sqlite3.connect(path)
    try:
        db.executescript(
            f"CREATE TABLE results ({OUTBOX_COLUMNS}{extra});\n"
            "CREATE INDEX results_due ON results (status, next_attempt_at);\n"
            "INSERT INTO results VALUES ('1.2.3', 'dr_grader', 1, '2.25.1', '{\"grade\": 2}',"
            f" X'5352', 'pending', 1, 5, 'http_503', 1, NULL{tail});\n"
            "INSERT INTO results VALUES ('1.2.9', 'dr_grader', 1, '2.25.9', '{\"grade\": 0}',"
            f" NULL, 'delivered', 1, 2, NULL, 2, 3{tail});\n"
            f"PRAGMA user_version = {version};\n"
        )
    finally:
        db.close()
    return path
