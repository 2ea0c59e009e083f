"""The SQLite outbox: idempotent puts, due rows, delivery bookkeeping, survival across reopen."""

from __future__ import annotations

import time
from pathlib import Path

from gateway.pacs.outbox import Outbox

RESULT = {"sop_instance_uid": "1.2.3", "result": {"grade": 2}}


def put(outbox: Outbox, uid: str = "1.2.3", version: int = 1, sr: bytes = b"SR1") -> bool:
    return outbox.put(uid, "dr_grader", version, f"2.25.{version}", RESULT, sr)


def test_put_get_and_due(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "sub" / "outbox.sqlite3")
    assert outbox.get("1.2.3") is None
    assert put(outbox)
    row = outbox.get("1.2.3")
    assert row is not None
    assert (row.status, row.attempts, row.model_version, row.sr_sop_uid) == (
        "pending",
        0,
        1,
        "2.25.1",
    )
    assert row.result == RESULT
    due = outbox.due(time.time(), 10)
    assert [(d.source_sop_uid, d.sr_bytes, d.attempts) for d in due] == [("1.2.3", b"SR1", 0)]
    assert outbox.stats()[0] == 1


def test_same_source_and_version_is_stored_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    assert put(outbox)
    assert not put(outbox, sr=b"SR-other")
    assert outbox.due(time.time(), 10)[0].sr_bytes == b"SR1"


def test_a_new_model_version_replaces_the_row(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    put(outbox)
    outbox.mark_delivered("1.2.3", "2.25.1")
    assert put(outbox, version=2, sr=b"SR2")
    row = outbox.get("1.2.3")
    assert row is not None and (row.status, row.model_version, row.attempts) == ("pending", 2, 0)
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
