"""``python -m gateway.store upgrade|current|check|import-outbox [--url URL] [FILE]``.

Connects as the gateway does (``gateway/store/config.py``): ``DRG_DATABASE_URL`` (else
``sqlite:///var/drg.sqlite3``), the password from ``DRG_DATABASE_PASSWORD_FILE``, TLS from
``DRG_DATABASE_SSLMODE`` / ``DRG_DATABASE_SSLROOTCERT``; ``--url`` overrides the URL only.
``import-outbox FILE`` copies the rows of a per-pod SQLite outbox (``DRG_PACS_OUTBOX_PATH`` of
earlier versions) into the store; pending SRs stay pending. Output names the URL with its
password masked. Exit codes: 0 success, 1 the schema is not at head (``check``) or the database
cannot be reached, 2 a bad URL, setting or usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from gateway.store.config import DatabaseSettings, check_database_settings, from_environment
from gateway.store.engine import make_engine
from gateway.store.legacy_outbox import import_outbox
from gateway.store.migrate import (
    SchemaOutOfDate,
    check_current,
    current_revision,
    head_revision,
    upgrade,
)

ACTIONS = ("upgrade", "current", "check", "import-outbox")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.store", description=__doc__)
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("file", nargs="?", type=Path, help="the outbox file (import-outbox)")
    parser.add_argument("--url", help="database URL (default: $DRG_DATABASE_URL)")
    return parser


def _database(url: str | None) -> DatabaseSettings:
    database = from_environment()
    if url:
        check_database_settings(url, database.password_file, database.sslrootcert)
        database = dataclasses.replace(database, url=url)
    return database


def main(argv: Sequence[str] | None = None) -> int:
    """Run one action; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.action == "import-outbox") != (args.file is not None):
        parser.error("a FILE goes with import-outbox, and only with it")
    try:
        database = _database(args.url)
        engine = make_engine(database.connect_url())
    except (ValueError, OSError, sa.exc.ArgumentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = database.describe()
    try:
        if args.action == "upgrade":
            print(f"{where}: at {upgrade(engine)} (head)")
        elif args.action == "current":
            print(f"{where}: at {current_revision(engine) or 'nothing (never upgraded)'}")
        elif args.action == "check":
            revision = check_current(engine)
            head = head_revision()
            note = "head" if revision == head else f"newer than this code's {head}"
            print(f"{where}: at {revision} ({note})")
        else:
            check_current(engine)
            copied, skipped = import_outbox(engine, args.file)
            print(f"{where}: {copied} rows imported, {skipped} already there")
    except SchemaOutOfDate as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 1
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        print(f"{where}: cannot reach the database ({type(exc.orig).__name__})", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
