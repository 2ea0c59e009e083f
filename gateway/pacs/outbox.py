"""The durable outbox: one SQLite row per graded source instance, kept until the PACS accepts it.

Rows are keyed by the source SOP Instance UID. A row holds the JSON result (served by
``GET /v1/results/{uid}``, no patient data), the API client that sent the instance, the digest
of its content (``gateway.pacs.dataset.content_digest``) and, until delivery, the SR bytes.
The STOW-RS response is sent only after the row is committed (WAL, ``synchronous=FULL``), so a
result the PACS was told about survives a crash or restart. After delivery the SR bytes are
dropped: the PACS is the system of record and the gateway keeps no patient data at rest longer
than needed.

Schema version 2 (``PRAGMA user_version``) added ``sender`` and ``content_sha256``; a version 1
file is migrated in place on open (its rows keep NULL there: readable with ``results:read``
only, and a resend of one is taken as the same content, as version 1 did). A file from a newer
gateway is refused.

All methods are blocking; async callers run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Status = Literal["pending", "delivered"]
PutOutcome = Literal["stored", "duplicate", "conflict"]
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
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
    delivered_at     REAL,
    sender           TEXT,
    content_sha256   TEXT
);
CREATE INDEX IF NOT EXISTS results_due ON results (status, next_attempt_at);
"""


@dataclass(frozen=True)
class OutboxRow:
    """One result and its delivery state."""

    source_sop_uid: str
    model_name: str
    model_version: int
    sr_sop_uid: str
    result: dict[str, Any]
    status: Status
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    delivered_at: float | None
    sender: str | None = None
    content_sha256: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What the worker needs to send one SR."""

    source_sop_uid: str
    sr_sop_uid: str
    sr_bytes: bytes
    attempts: int


class Outbox:
    """SQLite-backed outbox; one connection guarded by a lock (calls come from worker threads)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    def _migrate(self) -> None:
        """Create the schema, or bring a version 1 file to version 2 (two nullable columns)."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            self._db.close()
            raise RuntimeError(
                f"outbox {self.path} has schema version {version}, newer than this gateway's "
                f"{SCHEMA_VERSION}: run the newer gateway, or move the file away"
            )
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
        with self._db:  # one transaction: both columns or neither
            self._db.execute("BEGIN IMMEDIATE")
            for column in ("sender", "content_sha256"):
                if column not in columns:
                    self._db.execute(f"ALTER TABLE results ADD COLUMN {column} TEXT")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def get(self, source_sop_uid: str) -> OutboxRow | None:
        """The row for a source instance, if it was graded."""
        with self._lock:
            row = self._db.execute(
                "SELECT source_sop_uid, model_name, model_version, sr_sop_uid, result_json, "
                "status, attempts, next_attempt_at, last_error, created_at, delivered_at, "
                "sender, content_sha256 FROM results WHERE source_sop_uid = ?",
                (source_sop_uid,),
            ).fetchone()
        if row is None:
            return None
        return OutboxRow(
            source_sop_uid=row[0],
            model_name=row[1],
            model_version=row[2],
            sr_sop_uid=row[3],
            result=json.loads(row[4]),
            status=row[5],
            attempts=row[6],
            next_attempt_at=row[7],
            last_error=row[8],
            created_at=row[9],
            delivered_at=row[10],
            sender=row[11],
            content_sha256=row[12],
        )

    def put(
        self,
        source_sop_uid: str,
        model_name: str,
        model_version: int,
        sr_sop_uid: str,
        result: dict[str, Any],
        sr_bytes: bytes,
        *,
        sender: str | None,
        content_sha256: str,
    ) -> PutOutcome:
        """Store a new pending result, decided atomically against the row already there.

        ``conflict``: the UID was stored with other content (nothing changes: the first SR
        stands, and no SR is ever built from mixed data). ``duplicate``: same content, same
        model version (idempotent resend). ``stored``: new, or same content graded by another
        model version (that replaces the row with a new pending SR; the sender stays).
        """
        now = time.time()
        document = json.dumps(result, separators=(",", ":"))
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            existing = self._db.execute(
                "SELECT model_name, model_version, content_sha256 FROM results "
                "WHERE source_sop_uid = ?",
                (source_sop_uid,),
            ).fetchone()
            if existing is None:
                self._db.execute(
                    "INSERT INTO results (source_sop_uid, model_name, model_version, "
                    "sr_sop_uid, result_json, sr_bytes, status, attempts, next_attempt_at, "
                    "created_at, sender, content_sha256) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)",
                    (
                        source_sop_uid,
                        model_name,
                        model_version,
                        sr_sop_uid,
                        document,
                        sr_bytes,
                        now,
                        now,
                        sender,
                        content_sha256,
                    ),
                )
                return "stored"
            same_model = (existing[0], existing[1]) == (model_name, model_version)
            outcome = compare(existing[2], content_sha256, same_model)
            if outcome != "stored":
                return outcome
            self._db.execute(
                "UPDATE results SET model_name = ?, model_version = ?, sr_sop_uid = ?, "
                "result_json = ?, sr_bytes = ?, status = 'pending', attempts = 0, "
                "next_attempt_at = ?, last_error = NULL, created_at = ?, delivered_at = NULL, "
                "sender = COALESCE(sender, ?), content_sha256 = ? WHERE source_sop_uid = ?",
                (
                    model_name,
                    model_version,
                    sr_sop_uid,
                    document,
                    sr_bytes,
                    now,
                    now,
                    sender,
                    content_sha256,
                    source_sop_uid,
                ),
            )
            return "stored"

    def due(self, now: float, limit: int) -> list[Delivery]:
        """Pending results whose next attempt is due, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT source_sop_uid, sr_sop_uid, sr_bytes, attempts FROM results "
                "WHERE status = 'pending' AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, created_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [Delivery(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    def next_due_at(self) -> float | None:
        """When the earliest pending result is due (None when nothing is pending)."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_attempt_at) FROM results WHERE status = 'pending'"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def mark_delivered(self, source_sop_uid: str, sr_sop_uid: str) -> None:
        """The PACS accepted the SR: keep the JSON result, drop the SR bytes."""
        with self._lock:
            self._db.execute(
                "UPDATE results SET status = 'delivered', delivered_at = ?, sr_bytes = NULL, "
                "attempts = attempts + 1, last_error = NULL "
                "WHERE source_sop_uid = ? AND sr_sop_uid = ?",
                (time.time(), source_sop_uid, sr_sop_uid),
            )

    def mark_failed(
        self, source_sop_uid: str, sr_sop_uid: str, error: str, next_attempt_at: float
    ) -> None:
        """An attempt failed: count it, remember why (no patient data) and when to retry."""
        with self._lock:
            self._db.execute(
                "UPDATE results SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                "WHERE source_sop_uid = ? AND sr_sop_uid = ? AND status = 'pending'",
                (error[:200], next_attempt_at, source_sop_uid, sr_sop_uid),
            )

    def stats(self) -> tuple[int, float | None]:
        """(number of pending results, creation time of the oldest pending one)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), MIN(created_at) FROM results WHERE status = 'pending'"
            ).fetchone()
        return int(row[0]), (None if row[1] is None else float(row[1]))


def compare(stored_sha256: str | None, content_sha256: str, same_model: bool) -> PutOutcome:
    """What a resend is, given the stored row's digest (None: a schema version 1 row)."""
    if stored_sha256 is not None and stored_sha256 != content_sha256:
        return "conflict"
    return "duplicate" if same_model else "stored"
