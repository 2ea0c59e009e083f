"""The throwaway PostgreSQL server the results store's tests and benches run against: SQLAlchemy
Core with psycopg 3 connects through its URL, ``FOR UPDATE SKIP LOCKED`` behaves as the store's
delivery claims need, data survives a restart and a crash, and nothing listens beyond loopback."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from harness.postgres import PostgresServer

DATABASES = itertools.count()
METADATA = sa.MetaData()
ITEMS = sa.Table(
    "items",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(40), nullable=False),
)


@pytest.fixture
def engine(postgres: PostgresServer) -> Iterator[sa.Engine]:
    """An engine on a fresh database (pre-ping: a restart drops pooled connections)."""
    url = postgres.create_database(f"harness_{next(DATABASES)}")
    engine = sa.create_engine(url, pool_pre_ping=True)
    with engine.begin() as conn:
        METADATA.create_all(conn)
        conn.execute(sa.insert(ITEMS), [{"id": i, "name": f"item-{i}"} for i in (1, 2, 3)])
    yield engine
    engine.dispose()


def names(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(ITEMS.c.name).order_by(ITEMS.c.id)).scalars())


def test_sqlalchemy_core_over_psycopg_with_a_password(postgres: PostgresServer) -> None:
    assert postgres.url.startswith(f"postgresql+psycopg://drg:{postgres.password}@127.0.0.1:")
    assert postgres.password_file.read_text() == postgres.password
    engine = sa.create_engine(postgres.url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        assert conn.execute(sa.text("SELECT current_user")).scalar() == "drg"
        assert int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) >= 150000
    engine.dispose()
    # TCP asks for the password (scram-sha-256): a wrong one is refused.
    wrong = sa.create_engine(postgres.url.replace(postgres.password, "not-the-password"))
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        wrong.connect()
    wrong.dispose()


def test_table_create_insert_select(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(ITEMS).values(id=4, name="item-4"))
    assert names(engine) == ["item-1", "item-2", "item-3", "item-4"]


def test_skip_locked_lets_a_second_claimer_take_the_next_row(engine: sa.Engine) -> None:
    claim = sa.select(ITEMS.c.id).order_by(ITEMS.c.id).limit(1).with_for_update(skip_locked=True)
    with engine.connect() as first, engine.connect() as second:
        first_tx = first.begin()
        assert first.execute(claim).scalar() == 1
        # Row 1 stays locked by the open transaction: the second claimer skips it, no waiting.
        with second.begin():
            second.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            assert second.execute(claim).scalar() == 2
            all_unlocked = second.execute(
                sa.select(ITEMS.c.id).order_by(ITEMS.c.id).with_for_update(skip_locked=True)
            )
            assert list(all_unlocked.scalars()) == [2, 3]
        first_tx.rollback()
        # Released: row 1 is claimable again.
        with second.begin():
            assert second.execute(claim).scalar() == 1


def test_restart_and_crash_keep_committed_data(postgres: PostgresServer, engine: sa.Engine) -> None:
    postgres.restart()
    assert names(engine) == ["item-1", "item-2", "item-3"]
    with engine.begin() as conn:
        conn.execute(sa.insert(ITEMS).values(id=5, name="item-5"))
    postgres.kill()
    with pytest.raises(sa.exc.OperationalError):
        engine.connect()
    postgres.start()  # crash recovery replays the WAL
    assert names(engine) == ["item-1", "item-2", "item-3", "item-5"]


def test_listens_on_loopback_only(postgres: PostgresServer) -> None:
    with postgres.admin() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    listeners = tcp_listeners(postgres.port)
    assert listeners == ["0100007F"], f"port {postgres.port} bound on {listeners}"
    # The unix socket lives in a private directory only the server user can enter.
    assert postgres.socket_dir.stat().st_mode & 0o077 == 0
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.2", port=postgres.port, connect_timeout=2)


def tcp_listeners(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) in LISTEN state on ``port``."""
    found = []
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found
