"""Engines for the store's two databases, chosen by URL (``DRG_DATABASE_URL``).

* ``sqlite:///path``: the embedded default. Every connection turns on WAL (readers never block
  the writer), ``synchronous=FULL`` (a committed result survives a power cut, as in the outbox),
  foreign keys and a busy timeout (a second writer waits instead of failing at once). Every
  transaction starts with ``BEGIN IMMEDIATE``: a read-then-write cannot fail half-way on a lock
  upgrade (pysqlite's own deferred BEGIN is turned off, as SQLAlchemy's docs advise).
* ``postgresql://...``: the cluster engine, always through psycopg 3 (``postgresql+psycopg``),
  with a statement timeout so a stuck server cannot hold a request past its deadline.

Messages name a URL only as ``render_as_string(hide_password=True)``: never the password.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

BUSY_TIMEOUT_MS = 5000
STATEMENT_TIMEOUT_MS = 15000
_POSTGRES_NAMES = ("postgresql", "postgres", "postgresql+psycopg")
_SQLITE_NAMES = ("sqlite", "sqlite+pysqlite")


def safe_url(url: str | URL) -> str:
    """The URL as it may appear in logs and messages (password masked)."""
    return make_url(url).render_as_string(hide_password=True)


def normalize_url(url: str | URL) -> URL:
    """``postgresql://`` and ``postgres://`` become ``postgresql+psycopg://``; SQLite stays.

    Other drivers are refused: the store is tested on psycopg 3 and pysqlite only.
    """
    parsed = make_url(url)
    if parsed.drivername in _POSTGRES_NAMES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in _SQLITE_NAMES:
        return parsed
    raise ValueError(
        f"unsupported database URL {safe_url(parsed)}: use sqlite:///path or postgresql://..."
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings (PRAGMAs do not persist, except journal_mode)."""
    assert isinstance(dbapi_connection, sqlite3.Connection)
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (below), not pysqlite
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_engine(url: str | URL) -> sa.Engine:
    """An engine for ``url``; a SQLite file's parent folder is created when missing."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, pool_pre_ping=True
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _begin_immediate)
        return engine
    # pre-ping: a PostgreSQL restart or failover drops pooled connections.
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"},
    )


def _begin_immediate(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
