"""The SQLite outbox: idempotent puts, content conflicts, due rows, delivery bookkeeping, survival
across reopen, and the in-place migration of a version 1 file."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from gateway.pacs.outbox import Outbox, PutOutcome

RESULT = {"sop_instance_uid": "1.2.3", "result": {"grade": 2}}
CONTENT = "a" * 64
OTHER_CONTENT = "b" * 64


def put(
    outbox: Outbox,
    uid: str = "1.2.3",
    version: int = 1,
    sr: bytes = b"SR1",
    sender: str | None = "pacs-1",
    content: str = CONTENT,
) -> PutOutcome:
    return outbox.put(
        uid,
        "dr_grader",
        version,
        f"2.25.{version}",
        RESULT,
        sr,
        sender=sender,
        content_sha256=content,
    )


def test_put_get_and_due(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "sub" / "outbox.sqlite3")
    assert outbox.get("1.2.3") is None
    assert put(outbox) == "stored"
    row = outbox.get("1.2.3")
    assert row is not None
    assert (row.status, row.attempts, row.model_version, row.sr_sop_uid) == (
        "pending",
        0,
        1,
        "2.25.1",
    )
    assert row.result == RESULT
    assert (row.sender, row.content_sha256) == ("pacs-1", CONTENT)
    due = outbox.due(time.time(), 10)
    assert [(d.source_sop_uid, d.sr_bytes, d.attempts) for d in due] == [("1.2.3", b"SR1", 0)]
    assert outbox.stats()[0] == 1


def test_same_source_and_version_is_stored_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    assert put(outbox) == "stored"
    assert put(outbox, sr=b"SR-other", sender="pacs-2") == "duplicate"
    assert outbox.due(time.time(), 10)[0].sr_bytes == b"SR1"
    row = outbox.get("1.2.3")
    assert row is not None and row.sender == "pacs-1"


@pytest.mark.parametrize("version", [1, 2])
def test_other_content_under_a_known_uid_is_a_conflict_and_changes_nothing(
    tmp_path: Path, version: int
) -> None:
    """The poisoning of the review: whoever sends other data under a stored UID (with this or a
    newer model version) neither replaces the row nor is told it was stored."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    assert put(outbox, sender="pacs-1") == "stored"
    outcome = put(outbox, version=version, sr=b"PLANTED", sender="pacs-2", content=OTHER_CONTENT)
    assert outcome == "conflict"
    row = outbox.get("1.2.3")
    assert row is not None
    assert (row.sender, row.content_sha256, row.model_version) == ("pacs-1", CONTENT, 1)
    assert outbox.due(time.time(), 10)[0].sr_bytes == b"SR1"


def test_a_new_model_version_replaces_the_row(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    put(outbox)
    outbox.mark_delivered("1.2.3", "2.25.1")
    assert put(outbox, version=2, sr=b"SR2", sender="pacs-2") == "stored"
    row = outbox.get("1.2.3")
    assert row is not None and (row.status, row.model_version, row.attempts) == ("pending", 2, 0)
    assert row.sender == "pacs-1"  # the first sender keeps the result
    assert outbox.due(time.time(), 10)[0].sr_bytes == b"SR2"


def test_failed_attempts_postpone_and_delivery_drops_the_sr(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    put(outbox)
    later = time.time() + 60
    outbox.mark_failed("1.2.3", "2.25.1", "http_503", later)
    assert outbox.due(time.time(), 10) == []
    assert outbox.next_due_at() == later
    row = outbox.get("1.2.3")
    assert row is not None and (row.attempts, row.last_error) == (1, "http_503")
    assert outbox.due(later + 1, 10)[0].attempts == 1
    outbox.mark_delivered("1.2.3", "2.25.1")
    row = outbox.get("1.2.3")
    assert row is not None
    assert (row.status, row.attempts, row.last_error) == ("delivered", 2, None)
    assert row.delivered_at is not None
    assert outbox.next_due_at() is None
    assert outbox.stats() == (0, None)
    raw = outbox._db.execute("SELECT sr_bytes FROM results").fetchone()
    assert raw == (None,)


def test_a_stale_delivery_does_not_mark_a_newer_sr(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    put(outbox)
    put(outbox, version=2)
    outbox.mark_delivered("1.2.3", "2.25.1")  # the old SR's answer arrives late
    row = outbox.get("1.2.3")
    assert row is not None and row.status == "pending"


def test_pending_rows_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = Outbox(path)
    put(first, "1.2.3")
    put(first, "1.2.4")
    first.mark_delivered("1.2.4", "2.25.1")
    first.close()
    second = Outbox(path)
    assert [d.source_sop_uid for d in second.due(time.time(), 10)] == ["1.2.3"]
    row = second.get("1.2.4")
    assert row is not None and row.status == "delivered"


def test_due_is_ordered_and_limited(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    for index in range(5):
        put(outbox, f"1.2.{index}")
    outbox.mark_failed("1.2.0", "2.25.1", "x", time.time() + 0.5)
    due = outbox.due(time.time() + 1, 3)
    assert [d.source_sop_uid for d in due] == ["1.2.1", "1.2.2", "1.2.3"]


VERSION_1_SCHEMA = """
CREATE TABLE results (
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
    delivered_at     REAL
);
CREATE INDEX results_due ON results (status, next_attempt_at);
INSERT INTO results VALUES ('1.2.3', 'dr_grader', 1, '2.25.1', '{"grade": 2}', X'5352',
                            'pending', 0, 0, NULL, 0, NULL);
"""
"""The outbox as the previous gateway version wrote it (schema of commit b3fb9d8)."""


def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(VERSION_1_SCHEMA)
    outbox = Outbox(path)
    row = outbox.get("1.2.3")
    assert row is not None and row.result == {"grade": 2}
    assert (row.sender, row.content_sha256) == (None, None)
    assert [d.sr_bytes for d in outbox.due(time.time(), 10)] == [b"SR"]
    # A resend of a row from before the digest existed is taken as the same content (as the
    # previous version did); a new instance gets both columns.
    assert put(outbox) == "duplicate"
    assert put(outbox, uid="1.2.4") == "stored"
    outbox.close()
    reopened = Outbox(path)  # migrating twice is a no-op
    row = reopened.get("1.2.4")
    assert row is not None and row.sender == "pacs-1"
    assert reopened._db.execute("PRAGMA user_version").fetchone() == (2,)


def test_a_file_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 3")
    with pytest.raises(RuntimeError, match="schema version 3, newer than"):
        Outbox(path)
