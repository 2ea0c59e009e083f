"""The results store on both engines (a SQLite file, a fresh PostgreSQL database): idempotent
puts, content conflicts, model-version re-grades, due rows, delivery bookkeeping (SR bytes
dropped on delivery), survival across reopen, leases, the retention purge and the import of old
per-pod outbox files. PostgreSQL-only cases are in ``test_result_store_postgres.py``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store.config import DatabaseSettings
from gateway.store.legacy_outbox import import_outbox
from gateway.store.results import PutOutcome, ResultStore
from gateway.store.schema import results
from tests.support.result_store import CONTENT, outbox_file

RESULT = {"sop_instance_uid": "1.2.3", "result": {"grade": 2}}
OTHER_CONTENT = "b" * 64
LEASE_S = 60.0


def put(
    store: ResultStore,
    uid: str = "1.2.3",
    version: int = 1,
    sr: bytes = b"SR1",
    sender: str | None = "pacs-1",
    content: str = CONTENT,
) -> PutOutcome:
    return store.put(
        uid, "dr_grader", version, f"2.25.{version}", RESULT, sr, sender=sender,
        content_sha256=content,
    )  # fmt: skip


def due(store: ResultStore, now: float | None = None, owner: str = "r1") -> list[str]:
    """Claim everything due (leased to ``owner``); the source UIDs in claim order."""
    claimed = store.claim(owner, time.time() if now is None else now, LEASE_S, limit=100)
    return [d.key for d in claimed]


def raw_sr_bytes(store: ResultStore, uid: str) -> bytes | None:
    with store.engine.connect() as conn:
        value = conn.execute(
            sa.select(results.c.sr_bytes).where(results.c.source_sop_uid == uid)
        ).scalar_one()
    return None if value is None else bytes(value)


def test_put_get_and_claim(store: ResultStore) -> None:
    assert store.get("1.2.3") is None
    assert put(store) == "stored"
    row = store.get("1.2.3")
    assert row is not None
    assert (row.status, row.attempts, row.model_version, row.sr_sop_uid) == (
        "pending", 0, 1, "2.25.1",
    )  # fmt: skip
    assert row.result == RESULT
    assert (row.sender, row.content_sha256) == ("pacs-1", CONTENT)
    assert store.stats()[0] == 1
    claimed = store.claim("r1", time.time(), LEASE_S, limit=10)
    assert [(d.key, d.sr_sop_uid, d.sr_bytes, d.attempts) for d in claimed] == [
        ("1.2.3", "2.25.1", b"SR1", 0)
    ]
    store.ping()


def test_same_source_and_version_is_stored_once(store: ResultStore) -> None:
    assert put(store) == "stored"
    assert put(store, sr=b"SR-other", sender="pacs-2") == "duplicate"
    assert [d.sr_bytes for d in store.claim("r1", time.time(), LEASE_S)] == [b"SR1"]
    row = store.get("1.2.3")
    assert row is not None and row.sender == "pacs-1"
    assert store.stats()[0] == 1


@pytest.mark.parametrize("version", [1, 2])
def test_other_content_under_a_known_uid_is_a_conflict_and_changes_nothing(
    store: ResultStore, version: int
) -> None:
    """Other data sent under a stored UID (same or newer model version) neither replaces the
    row nor is reported stored."""
    assert put(store, sender="pacs-1") == "stored"
    outcome = put(store, version=version, sr=b"PLANTED", sender="pacs-2", content=OTHER_CONTENT)
    assert outcome == "conflict"
    row = store.get("1.2.3")
    assert row is not None
    assert (row.sender, row.content_sha256, row.model_version) == ("pacs-1", CONTENT, 1)
    assert [d.sr_bytes for d in store.claim("r1", time.time(), LEASE_S)] == [b"SR1"]


def test_a_new_model_version_replaces_the_row(store: ResultStore) -> None:
    put(store)
    store.mark_delivered("1.2.3", "2.25.1")
    assert put(store, version=2, sr=b"SR2", sender="pacs-2") == "stored"
    row = store.get("1.2.3")
    assert row is not None
    assert (row.status, row.model_version, row.attempts, row.sr_sop_uid) == (
        "pending", 2, 0, "2.25.2",
    )  # fmt: skip
    assert row.delivered_at is None
    assert row.sender == "pacs-1"  # the first sender keeps the result
    assert [d.sr_bytes for d in store.claim("r1", time.time(), LEASE_S)] == [b"SR2"]


def test_failed_attempts_postpone_and_delivery_drops_the_sr(store: ResultStore) -> None:
    put(store)
    assert due(store) == ["1.2.3"]
    later = time.time() + 60
    store.mark_failed("r1", "1.2.3", "2.25.1", "http_503", later)
    assert due(store, owner="r2") == []
    assert store.next_due_at() == pytest.approx(later)
    row = store.get("1.2.3")
    assert row is not None and (row.attempts, row.last_error) == (1, "http_503")
    claimed = store.claim("r2", later + 1, LEASE_S)
    assert [(d.key, d.attempts) for d in claimed] == [("1.2.3", 1)]
    assert raw_sr_bytes(store, "1.2.3") == b"SR1"
    store.mark_delivered("1.2.3", "2.25.1")
    row = store.get("1.2.3")
    assert row is not None
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)
    assert row.delivered_at is not None
    assert row.result == RESULT  # the JSON result stays readable
    assert store.next_due_at() is None
    assert store.stats() == (0, None)
    assert raw_sr_bytes(store, "1.2.3") is None  # no patient data at rest once delivered
    assert due(store, later + 10**6, owner="r3") == []


def test_a_stale_delivery_does_not_mark_a_newer_sr(store: ResultStore) -> None:
    put(store)
    put(store, version=2, sr=b"SR2")
    store.mark_delivered("1.2.3", "2.25.1")  # the old SR's answer arrives late
    row = store.get("1.2.3")
    assert row is not None and (row.status, row.sr_sop_uid) == ("pending", "2.25.2")
    assert raw_sr_bytes(store, "1.2.3") == b"SR2"


def test_pending_rows_survive_a_reopen(database: DatabaseSettings) -> None:
    first = ResultStore.open(database)
    put(first, "1.2.3")
    put(first, "1.2.4")
    first.mark_delivered("1.2.4", "2.25.1")
    first.close()
    second = ResultStore.open(database)
    try:
        assert due(second) == ["1.2.3"]
        row = second.get("1.2.4")
        assert row is not None and row.status == "delivered"
    finally:
        second.close()


def test_claims_are_oldest_first_and_limited(store: ResultStore) -> None:
    for index in range(5):
        put(store, f"1.2.{index}")
    now = time.time()
    assert due(store, now) == [f"1.2.{i}" for i in range(5)]
    store.mark_failed("r1", "1.2.0", "2.25.1", "x", now + 0.5)
    store.release("r1")
    claimed = store.claim("r2", now + 1, LEASE_S, limit=3)
    assert [d.key for d in claimed] == ["1.2.1", "1.2.2", "1.2.3"]


def test_a_lease_keeps_a_row_to_its_owner_until_it_expires(store: ResultStore) -> None:
    put(store, "1.2.3")
    put(store, "1.2.4")
    now = time.time()
    first = store.claim("r1", now, LEASE_S, limit=1)
    assert [d.key for d in first] == ["1.2.3"]
    assert due(store, now + 1, owner="r2") == ["1.2.4"]
    store.mark_delivered("1.2.4", "2.25.1")
    assert due(store, now + 2, owner="r2") == []  # both rows leased
    assert due(store, now + 3, owner="r1") == []  # its own lease too: never sent twice
    # r2 is not the owner of 1.2.3: its mark_failed changes nothing.
    store.mark_failed("r2", "1.2.3", "2.25.1", "http_503", now)
    row = store.get("1.2.3")
    assert row is not None and (row.attempts, row.last_error) == (0, None)
    assert due(store, now + 4, owner="r3") == []
    # r1 dies: once its lease has run out another replica claims the row.
    expired = now + LEASE_S + 0.001
    again = store.claim("r3", expired, LEASE_S)
    assert [(d.key, d.sr_bytes) for d in again] == [("1.2.3", b"SR1")]
    # r1's late failure report is a no-op now that r3 holds the lease.
    store.mark_failed("r1", "1.2.3", "2.25.1", "late", expired + 10**6)
    row = store.get("1.2.3")
    assert row is not None and (row.attempts, row.last_error) == (0, None)
    assert due(store, expired + 1, owner="r4") == []
    # A clean stop gives r3's lease back: another replica may send at once.
    assert store.release("r3") == 1
    assert store.release("r3") == 0
    assert due(store, expired + 2, owner="r4") == ["1.2.3"]


def test_next_due_at_is_the_lease_end_of_a_leased_row(store: ResultStore) -> None:
    assert store.next_due_at() is None
    put(store)
    row = store.get("1.2.3")
    assert row is not None and store.next_due_at() == pytest.approx(row.next_attempt_at)
    now = time.time()
    store.claim("r1", now, LEASE_S)
    assert store.next_due_at() == pytest.approx(now + LEASE_S)
    store.release("r1")
    assert store.next_due_at() == pytest.approx(row.next_attempt_at)
    store.claim("r1", now, LEASE_S)
    store.mark_failed("r1", "1.2.3", "2.25.1", "http_503", now + 2 * LEASE_S)
    assert store.next_due_at() == pytest.approx(now + 2 * LEASE_S)


def test_purge_deletes_only_delivered_rows_older_than_the_cutoff(store: ResultStore) -> None:
    for uid in ("1.2.1", "1.2.2", "1.2.3"):
        put(store, uid)
    store.mark_delivered("1.2.1", "2.25.1")
    cutoff = time.time() + 0.01
    time.sleep(0.02)
    store.mark_delivered("1.2.2", "2.25.1")  # delivered after the cutoff: stays
    assert store.purge(cutoff) == 1
    assert store.get("1.2.1") is None
    kept = store.get("1.2.2")
    assert kept is not None and kept.status == "delivered"
    assert store.purge(time.time() + 10**9) == 1  # a far cutoff takes every delivered row
    pending = store.get("1.2.3")  # created long before that cutoff, never delivered
    assert pending is not None and pending.status == "pending"
    assert store.stats()[0] == 1
    assert store.purge(time.time() + 10**9) == 0


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_outbox_file_is_imported_once(
    store: ResultStore, tmp_path: Path, version: int
) -> None:
    path = outbox_file(tmp_path / "outbox.sqlite3", version)
    before = path.read_bytes()
    assert import_outbox(store.engine, path) == (2, 0)
    assert import_outbox(store.engine, path) == (0, 2)  # run twice: no duplicates
    assert path.read_bytes() == before  # opened read-only
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(results)).scalar() == 2
    row = store.get("1.2.3")
    assert row is not None and row.result == {"grade": 2}
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "http_503")
    expected = ("pacs-1", CONTENT) if version == 2 else (None, None)
    assert (row.sender, row.content_sha256) == expected
    delivered = store.get("1.2.9")
    assert delivered is not None and (delivered.status, delivered.delivered_at) == ("delivered", 3)
    assert store.stats() == (1, 1.0)
    # The imported pending SR is delivered like any other.
    claimed = store.claim("r1", time.time(), LEASE_S, limit=10)
    assert [(d.key, d.sr_bytes, d.attempts) for d in claimed] == [("1.2.3", b"SR", 1)]
    # A resend of a v1 row (no digest) is taken as the same content, as the outbox did.
    assert put(store, "1.2.3") == "duplicate"
    assert put(store, "1.2.3", content=OTHER_CONTENT) == (
        "conflict" if version == 2 else "duplicate"
    )


def test_importing_a_missing_file_says_so(store: ResultStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no outbox file"):
        import_outbox(store.engine, tmp_path / "absent.sqlite3")
