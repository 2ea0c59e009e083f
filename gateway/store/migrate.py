"""Bring a store database to the code's schema, and check it is there.

Alembic runs from code: a ``Config`` built here points at ``migrations/`` inside the package
(no alembic.ini on disk) and gets the connection to migrate through ``config.attributes``.

Concurrent upgrades (several replicas starting at once, or a Job racing a pod) are safe on
PostgreSQL: each upgrade runs in one transaction that first takes a transaction-level advisory
lock (``pg_advisory_xact_lock``). The second waits for the first to commit, then reads the
version table afresh, finds head and does nothing; the lock goes with the commit or rollback,
so a crashed upgrader cannot leave it held. PostgreSQL DDL is transactional: a failed revision
leaves nothing half-created. SQLite has one writer at a time anyway (busy timeout: it waits).
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from gateway.store.engine import safe_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit key works; this one is "drgstore" in ASCII, unlikely to clash with others.
ADVISORY_LOCK_KEY = 0x64726773746F7265


class SchemaOutOfDate(RuntimeError):
    """The database's schema revision is not the one this code needs."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision in ``migrations/versions`` (what the code needs)."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations under {MIGRATIONS}")
    return head


def current_revision(engine: sa.Engine) -> str | None:
    """The database's revision; ``None`` for a database never upgraded."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine, target: str = "head") -> str:
    """Upgrade the database to ``target`` (head: a no-op when it is there); returns the
    revision it is at."""
    config = _config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held until this transaction ends: concurrent upgraders run one after another.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
        before = MigrationContext.configure(conn).get_current_revision()
        config.attributes["connection"] = conn
        command.upgrade(config, target)
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("store %s upgraded from %s to %s", safe_url(engine.url), before, after)
    if after is None:
        raise RuntimeError(f"upgrade of {safe_url(engine.url)} left no revision")
    return after


def check_current(engine: sa.Engine) -> str:
    """Raise :class:`SchemaOutOfDate` when the database is older than the code; returns the
    database's revision.

    A revision this code does not know is newer: a release that migrated, then rolled back.
    Migrations are additive for one release (docs/deploy.md), so the previous code still reads
    and writes that schema: it starts, with a warning.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return head
    if current is not None and not _known(current):
        log.warning(
            "store %s is at %s, newer than this code's %s (a rollback?): starting",
            safe_url(engine.url),
            current,
            head,
        )
        return current
    where = "empty (never upgraded)" if current is None else current
    raise SchemaOutOfDate(
        f"database schema at {where}, code needs {head}: run `python -m gateway.store upgrade`"
    )


def _known(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations."""
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except Exception:  # alembic raises its own CommandError / ResolutionError for unknown ids
        return False
