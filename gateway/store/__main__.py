"""``python -m gateway.store upgrade|current|check [--url URL]``.

The URL defaults to ``DRG_DATABASE_URL``, else ``sqlite:///var/drg.sqlite3`` (relative to the
working directory; the folder is created). Output names the URL with its password masked.
Exit codes: 0 success, 1 the schema is not at head (``check``), 2 a bad URL or usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import sqlalchemy as sa

from gateway.store.engine import make_engine, safe_url
from gateway.store.migrate import SchemaOutOfDate, check_current, current_revision, upgrade

DEFAULT_URL = "sqlite:///var/drg.sqlite3"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.store", description=__doc__)
    parser.add_argument("action", choices=("upgrade", "current", "check"))
    parser.add_argument(
        "--url",
        default=os.environ.get("DRG_DATABASE_URL") or DEFAULT_URL,
        help="database URL (default: $DRG_DATABASE_URL, else %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one action; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        engine = make_engine(args.url)
    except (ValueError, sa.exc.ArgumentError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = safe_url(engine.url)
    try:
        if args.action == "upgrade":
            print(f"{where}: at {upgrade(engine)} (head)")
        elif args.action == "current":
            print(f"{where}: at {current_revision(engine) or 'nothing (never upgraded)'}")
        else:
            print(f"{where}: at {check_current(engine)} (head)")
    except SchemaOutOfDate as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
