"""The results store's migrations, run once per engine (SQLite on a temp file, PostgreSQL on a
fresh database of the throwaway server): upgrade from empty, idempotence, the schema check, no
drift between the migration and ``gateway/store/schema.py``, concurrent upgrades on PostgreSQL
and the ``python -m gateway.store`` CLI (which never prints a password)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gateway.store import schema
from gateway.store.engine import make_engine, normalize_url
from gateway.store.migrate import (
    SchemaOutOfDate,
    check_current,
    current_revision,
    head_revision,
    upgrade,
)
from harness.postgres import PostgresServer
from tests.support.result_store import database_name

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database on each engine (the SQLite file's folder does not exist yet)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'var' / 'store.sqlite3'}"
    postgres: PostgresServer = request.getfixturevalue("postgres")
    return postgres.create_database(database_name("migrations"))


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def version_rows(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def test_upgrade_from_empty_creates_the_tables_and_reports_head(engine: sa.Engine) -> None:
    assert table_names(engine) == set()
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision() == "0002"
    assert table_names(engine) == {"results", "studies", "alembic_version"}
    assert current_revision(engine) == head_revision()


def test_upgrade_twice_is_a_no_op(engine: sa.Engine) -> None:
    upgrade(engine)
    row = {
        "source_sop_uid": "1.2.3",
        "model_name": "dr_grader",
        "model_version": 1,
        "sr_sop_uid": "1.2.3.4",
        "result_json": "{}",
        "status": "pending",
        "next_attempt_at": 0.0,
        "created_at": 0.0,
    }
    with engine.begin() as conn:
        conn.execute(sa.insert(schema.results), row)
    assert upgrade(engine) == head_revision()
    assert version_rows(engine) == [head_revision()]
    with engine.connect() as conn:
        kept = conn.execute(sa.select(schema.results)).mappings().one()
    assert kept["source_sop_uid"] == "1.2.3"
    assert kept["attempts"] == 0  # server default
    assert kept["sr_bytes"] is None
    assert kept["lease_owner"] is None
    # The status CHECK constraint is in the migrated table.
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(schema.results), {**row, "source_sop_uid": "9", "status": "lost"})


def test_check_current_raises_the_clear_message_until_upgraded(engine: sa.Engine) -> None:
    with pytest.raises(SchemaOutOfDate) as raised:
        check_current(engine)
    assert str(raised.value) == (
        "database schema at empty (never upgraded), code needs 0002: "
        "run `python -m gateway.store upgrade`"
    )
    upgrade(engine)
    assert check_current(engine) == head_revision()


def test_migrated_tables_match_the_live_schema(engine: sa.Engine) -> None:
    upgrade(engine)
    inspector = sa.inspect(engine)
    dialect = engine.dialect
    assert table_names(engine) - {"alembic_version"} == set(schema.metadata.tables)
    for name, table in schema.metadata.tables.items():
        reflected = {column["name"]: column for column in inspector.get_columns(name)}
        assert list(reflected) == [column.name for column in table.columns], name
        for column in table.columns:
            got = reflected[column.name]
            assert got["type"].compile(dialect) == column.type.compile(dialect), column.name
            assert got["nullable"] == column.nullable, column.name
        assert inspector.get_pk_constraint(name)["constrained_columns"] == [
            column.name for column in table.primary_key
        ]
        assert {index["name"]: index["column_names"] for index in inspector.get_indexes(name)} == {
            index.name: [column.name for column in index.columns] for index in table.indexes
        }
        assert {check["name"] for check in inspector.get_check_constraints(name)} == {
            constraint.name
            for constraint in table.constraints
            if isinstance(constraint, sa.CheckConstraint)
        }
    # Alembic's own comparison (types included) finds nothing to migrate either.
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, schema.metadata) == []


def test_concurrent_upgrades_on_postgresql_both_succeed(postgres: PostgresServer) -> None:
    url = postgres.create_database(database_name("migrations_race"))
    engines = [make_engine(url) for _ in range(2)]
    for engine in engines:  # connect first: the threads then race on the upgrade itself
        engine.connect().close()
    start = threading.Barrier(len(engines))
    outcomes: list[str | BaseException] = []

    def run(engine: sa.Engine) -> None:
        start.wait()
        try:
            outcomes.append(upgrade(engine))
        except BaseException as exc:  # reported below: a thread cannot fail the test itself
            outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == [head_revision(), head_revision()]
    assert version_rows(engines[0]) == [head_revision()]
    assert table_names(engines[0]) == {"results", "studies", "alembic_version"}
    for engine in engines:
        engine.dispose()


def cli(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRG_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), **settings})
    return subprocess.run(
        [sys.executable, "-m", "gateway.store", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_cli_check_fails_on_a_fresh_database_and_upgrade_fixes_it(
    store_url: str, tmp_path: Path
) -> None:
    password = sa.make_url(store_url).password
    settings = {}
    if password:  # PostgreSQL: as in the cluster, the password comes from a file
        secret = tmp_path / "password"
        secret.write_text(password + "\n")
        settings["DRG_DATABASE_PASSWORD_FILE"] = str(secret)
        store_url = store_url.replace(f":{password}@", "@")
    outputs = []
    fresh = cli("check", "--url", store_url, **settings)
    outputs.append(fresh.stdout + fresh.stderr)
    assert fresh.returncode == 1, fresh.stderr
    assert "database schema at empty (never upgraded), code needs 0002" in fresh.stderr
    assert "run `python -m gateway.store upgrade`" in fresh.stderr
    for action, expected in (("upgrade", "at 0002 (head)"), ("check", "at 0002 (head)")):
        done = cli(action, "--url", store_url, **settings)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout
    current = cli("current", **settings, DRG_DATABASE_URL=store_url)
    outputs.append(current.stdout + current.stderr)
    assert current.returncode == 0
    assert "at 0002" in current.stdout
    if password:
        assert all(password not in output for output in outputs)
        with_password = store_url.replace("@", f":{password}@", 1)
        refused = cli("check", "--url", with_password)
        assert refused.returncode == 2
        assert "must not carry a password" in refused.stderr
        assert password not in refused.stdout + refused.stderr


def test_cli_refuses_an_unknown_driver_without_printing_the_password() -> None:
    done = cli("check", "--url", "mysql://drg:s3cret-pass@db/drg")
    assert done.returncode == 2
    assert "unsupported database URL mysql://drg:***@db/drg" in done.stderr
    assert "s3cret-pass" not in done.stdout + done.stderr


def test_urls_and_sqlite_connection_settings(tmp_path: Path) -> None:
    assert normalize_url("postgresql://u:p@h/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u:p@h/d").drivername == "postgresql+psycopg"
    engine = make_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'store.sqlite3'}")
    with engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }
    engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 5000,
        "synchronous": 2,
    }
    assert (tmp_path / "a" / "b" / "store.sqlite3").is_file()


def test_a_schema_newer_than_the_code_is_accepted_after_a_rollback(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
        assert check_current(engine) == "0099_future"
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM alembic_version"))
        with pytest.raises(SchemaOutOfDate, match="empty"):
            check_current(engine)
    finally:
        engine.dispose()
