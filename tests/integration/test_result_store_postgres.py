"""The results store on PostgreSQL only: concurrent claims by several replicas take disjoint
rows (``FOR UPDATE SKIP LOCKED``), concurrent puts of one new UID, the schema check at open, a
stopped server (``StoreUnavailable``, then recovery) and the ``python -m gateway.store`` CLI
with the password from a file."""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from gateway.store.config import DatabaseSettings
from gateway.store.migrate import SchemaOutOfDate
from gateway.store.results import ResultStore, StoreUnavailable
from harness.postgres import PostgresServer
from tests.support.result_store import CONTENT, database_name, fresh_postgres, outbox_file

REPO_ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 60.0
T = TypeVar("T")


@pytest.fixture
def store(postgres: PostgresServer) -> Iterator[ResultStore]:
    store = ResultStore.open(fresh_postgres(postgres, "results_pg")[1])
    yield store
    store.close()


def put(store: ResultStore, uid: str, sr: bytes = b"SR") -> str:
    return store.put(
        uid, "dr_grader", 1, f"2.25.{uid}", {"uid": uid}, sr, sender="pacs-1",
        content_sha256=CONTENT,
    )  # fmt: skip


def in_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(index)`` in ``count`` threads released at once; the results in order (the
    first error is raised here: a thread cannot fail the test)."""
    start = threading.Barrier(count)
    outcomes: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert sorted(outcomes) == list(range(count)), "a thread did not finish"
    return [outcomes[i] for i in range(count)]


def test_concurrent_claims_by_two_replicas_are_disjoint(store: ResultStore) -> None:
    """8 threads for each of 2 owners claim from 50 due rows: each row is claimed exactly once."""
    uids = [f"1.2.{i}" for i in range(50)]
    for uid in uids:
        assert put(store, uid) == "stored"
    now = time.time()

    def claim_all(index: int) -> list[tuple[str, str]]:
        owner = f"replica-{index % 2}"
        taken: list[tuple[str, str]] = []
        while claimed := store.claim(owner, now, LEASE_S, limit=3):
            taken += [(owner, d.key) for d in claimed]
        return taken

    claims = [claim for taken in in_threads(16, claim_all) for claim in taken]
    counts = Counter(uid for _, uid in claims)
    assert sorted(counts) == sorted(uids)
    assert {uid: n for uid, n in counts.items() if n > 1} == {}
    assert store.claim("replica-2", now, LEASE_S, limit=100) == []
    # The lease owners recorded are the ones that got each row.
    for owner in ("replica-0", "replica-1"):
        mine = {uid for who, uid in claims if who == owner}
        assert store.release(owner) == len(mine)


def put_nth(store: ResultStore, uid: str, index: int) -> str:
    return put(store, uid, sr=b"SR%d" % index)


def test_two_concurrent_puts_of_a_new_uid_store_it_once(store: ResultStore) -> None:
    for attempt in range(10):
        uid = f"1.3.{attempt}"
        outcomes = in_threads(2, functools.partial(put_nth, store, uid))
        assert sorted(outcomes) == ["duplicate", "stored"], outcomes
        row = store.get(uid)
        assert row is not None and row.status == "pending"
    assert store.stats()[0] == 10


def test_open_refuses_a_database_never_upgraded(postgres: PostgresServer) -> None:
    name = database_name("never_upgraded")
    postgres.create_database(name)
    database = DatabaseSettings(
        url=postgres.settings_url(name), password_file=postgres.password_file
    )
    with pytest.raises(SchemaOutOfDate, match=r"never upgraded.*python -m gateway\.store upgrade"):
        ResultStore.open(database)


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own, to stop and start (the session one stays up)."""
    server = PostgresServer(database="outage")
    with server:
        yield server


def test_a_stopped_server_raises_store_unavailable_then_recovers(
    own_server: PostgresServer,
) -> None:
    _, database = fresh_postgres(own_server, "outage")
    store = ResultStore.open(dataclasses.replace(database, connect_timeout_s=2))
    try:
        assert put(store, "1.2.1") == "stored"
        own_server.stop()
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: store.get("1.2.1"),
            "put": lambda: put(store, "1.2.2"),
            "claim": lambda: store.claim("r1", time.time(), LEASE_S),
            "ping": store.ping,
        }
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="results store unavailable"):
                call()
            assert time.monotonic() - started < 5, name
        own_server.start()
        store.ping()
        assert store.get("1.2.2") is None  # what failed was not stored
        row = store.get("1.2.1")  # what was committed survived
        assert row is not None and row.status == "pending"
        assert put(store, "1.2.2") == "stored"
        assert [d.key for d in store.claim("r1", time.time(), LEASE_S, 10)] == [
            "1.2.1",
            "1.2.2",
        ]
    finally:
        store.close()


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


def test_cli_upgrade_check_and_import_outbox_with_the_password_from_a_file(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    name = database_name("cli")
    postgres.create_database(name)
    settings = {
        "DRG_DATABASE_URL": postgres.settings_url(name),
        "DRG_DATABASE_PASSWORD_FILE": str(postgres.password_file),
    }
    outbox = outbox_file(tmp_path / "outbox.sqlite3", 2)
    runs = [
        ("check", 1, "database schema at empty (never upgraded)"),
        ("import-outbox", 1, "never upgraded"),
        ("upgrade", 0, "at 0002 (head)"),
        ("check", 0, "at 0002 (head)"),
        ("import-outbox", 0, "2 rows imported, 0 already there"),
        ("import-outbox", 0, "0 rows imported, 2 already there"),
    ]
    for action, code, expected in runs:
        args = (action, str(outbox)) if action == "import-outbox" else (action,)
        done = cli(*args, **settings)
        output = done.stdout + done.stderr
        assert done.returncode == code, output
        assert expected in output
        assert f"drg@127.0.0.1:{postgres.port}/{name}" in output
        assert postgres.password not in output
    store = ResultStore.open(
        DatabaseSettings(url=settings["DRG_DATABASE_URL"], password_file=postgres.password_file)
    )
    try:
        row = store.get("1.2.3")
        assert row is not None and (row.status, row.sender) == ("pending", "pacs-1")
        assert store.stats() == (1, 1.0)
    finally:
        store.close()
    # Without the password file the server refuses the login (exit 1, no traceback).
    refused = cli("check", DRG_DATABASE_URL=settings["DRG_DATABASE_URL"])
    assert refused.returncode == 1
    assert "cannot reach the database" in refused.stderr
    assert "Traceback" not in refused.stderr
