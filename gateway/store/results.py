"""The results store: one row per graded source instance, shared by every gateway replica.

A row holds the JSON result (served by ``GET /v1/results/{uid}``, no patient data), the API
client that sent the instance, the digest of its content and, until the PACS accepts it, the SR
bytes (which do hold patient data: they are dropped on delivery). STOW-RS answers only after
the row is committed.

Since version 2 a study's instances share one row in ``studies`` (``gateway.store.studies``)
with one SR for the study; delivery by N replicas with leases is ``gateway.store.outbox``.

Every method blocks (async callers use ``asyncio.to_thread``). A database that cannot be
reached raises :class:`StoreUnavailable`; nothing is reported stored that was not committed.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar

import sqlalchemy as sa

from gateway.store.config import DatabaseSettings
from gateway.store.engine import make_engine
from gateway.store.instances import PutOutcome, RowVanished, compare, put_result
from gateway.store.migrate import check_current, upgrade
from gateway.store.outbox import BY_KIND, OUTBOXES, Delivery, Kind
from gateway.store.schema import results, studies
from gateway.store.studies import (
    Compose,
    StudyContext,
    StudyMember,
    StudyRow,
    StudyUpdate,
    add_to_study,
    get_study,
)

Status = Literal["pending", "delivered"]
__all__ = ["Delivery", "PutOutcome", "ResultRow", "ResultStore", "StoreUnavailable", "compare"]
P = ParamSpec("P")
T = TypeVar("T")


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or failed mid-way (nothing was committed)."""


@dataclass(frozen=True)
class ResultRow:
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
    study_uid: str | None = None
    """The study this instance belongs to (its SR and delivery state are the study's)."""


_ROW_COLUMNS = (
    results.c.source_sop_uid,
    results.c.model_name,
    results.c.model_version,
    results.c.sr_sop_uid,
    results.c.result_json,
    results.c.status,
    results.c.attempts,
    results.c.next_attempt_at,
    results.c.last_error,
    results.c.created_at,
    results.c.delivered_at,
    results.c.sender,
    results.c.content_sha256,
    results.c.study_uid,
)
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def _guarded(method: Callable[P, T]) -> Callable[P, T]:
    """Turn a lost or unreachable database into :class:`StoreUnavailable`."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except _UNAVAILABLE as error:
            cause = type(getattr(error, "orig", None) or error).__name__
            raise StoreUnavailable(f"results store unavailable ({cause})") from error

    return wrapper


class ResultStore:
    """Results and their SR delivery state in SQLite or PostgreSQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @classmethod
    @_guarded
    def open(cls, database: DatabaseSettings) -> ResultStore:
        """Connect; the embedded SQLite upgrades itself, PostgreSQL must already be at head
        (``SchemaOutOfDate`` otherwise: the migration Job runs first)."""
        engine = make_engine(database.connect_url())
        try:
            if database.embedded:
                upgrade(engine)
            else:
                check_current(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    @_guarded
    def ping(self) -> None:
        """One round trip (readiness)."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    @_guarded
    def get(self, source_sop_uid: str) -> ResultRow | None:
        """The row for a source instance, if it was graded."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(*_ROW_COLUMNS).where(results.c.source_sop_uid == source_sop_uid)
            ).one_or_none()
        return None if row is None else _row(row)

    @_guarded
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
        stands). ``duplicate``: same content, same model version (an idempotent resend, from
        any replica). ``stored``: new, or the same content graded by another model version
        (that replaces the row with a new pending SR; the sender stays).
        """
        now = time.time()
        values = {
            "model_name": model_name,
            "model_version": model_version,
            "sr_sop_uid": sr_sop_uid,
            "result_json": json.dumps(result, separators=(",", ":")),
            "sr_bytes": sr_bytes,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": None,
            "created_at": now,
            "delivered_at": None,
            "content_sha256": content_sha256,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        with self._transaction() as conn:
            try:
                return put_result(conn, source_sop_uid, values, sender=sender)
            except RowVanished as error:
                raise StoreUnavailable(str(error)) from None

    @_guarded
    def claim(self, owner: str, now: float, lease_s: float, limit: int = 1) -> list[Delivery]:
        """Lease up to ``limit`` due SRs to ``owner``: study SRs first, then per-instance SRs
        of the release before studies, oldest first in each."""
        claimed: list[Delivery] = []
        with self._transaction() as conn:
            for box in OUTBOXES:
                if len(claimed) < limit:
                    claimed.extend(box.claim(conn, owner, now, lease_s, limit - len(claimed)))
        return claimed

    @_guarded
    def next_due_at(self) -> float | None:
        """When the earliest pending SR can be claimed (None when nothing is pending)."""
        with self.engine.connect() as conn:
            due = [box.next_due_at(conn) for box in OUTBOXES]
        found = [value for value in due if value is not None]
        return min(found) if found else None

    @_guarded
    def mark_delivered(self, key: str, sr_sop_uid: str, kind: Kind = "instance") -> None:
        """The PACS accepted the SR: keep the JSON result, drop the SR bytes and the lease."""
        with self._transaction() as conn:
            BY_KIND[kind].mark_delivered(conn, key, sr_sop_uid, time.time())

    @_guarded
    def mark_failed(
        self,
        owner: str,
        key: str,
        sr_sop_uid: str,
        error: str,
        next_attempt_at: float,
        kind: Kind = "instance",
    ) -> None:
        """An attempt failed: count it, remember why (a code, no patient data), free the row
        until ``next_attempt_at``. No-op when the lease has passed to another replica."""
        with self._transaction() as conn:
            BY_KIND[kind].mark_failed(conn, owner, key, sr_sop_uid, error, next_attempt_at)

    @_guarded
    def release(self, owner: str) -> int:
        """Give up ``owner``'s leases (a clean stop): other replicas may send them at once."""
        with self._transaction() as conn:
            return sum(box.release(conn, owner) for box in OUTBOXES)

    @_guarded
    def stats(self) -> tuple[int, float | None]:
        """(number of pending SRs, when the oldest pending one was built), store-wide."""
        with self.engine.connect() as conn:
            found = [box.stats(conn) for box in OUTBOXES]
        oldest = [value for _, value in found if value is not None]
        return sum(count for count, _ in found), (min(oldest) if oldest else None)

    @_guarded
    def purge(self, delivered_before: float) -> int:
        """Delete what was delivered before the cutoff (retention): per-instance results, and
        studies with their instances' results; pending rows always stay."""
        with self._transaction() as conn:
            expired = sa.select(studies.c.study_uid).where(
                studies.c.status == "delivered", studies.c.delivered_at < delivered_before
            )
            members = conn.execute(
                sa.delete(results).where(results.c.study_uid.in_(expired.scalar_subquery()))
            ).rowcount
            conn.execute(
                sa.delete(studies).where(studies.c.study_uid.in_(expired.scalar_subquery()))
            )
            alone = conn.execute(
                sa.delete(results).where(
                    results.c.study_uid.is_(None),
                    results.c.status == "delivered",
                    results.c.delivered_at < delivered_before,
                )
            ).rowcount
            return int(members + alone)

    @_guarded
    def add_to_study(
        self,
        study_uid: str,
        members: list[StudyMember],
        study: StudyContext,
        compose: Compose,
    ) -> StudyUpdate:
        """Store instances of one study and rebuild its SR, in one transaction
        (``gateway.store.studies.add_to_study``)."""
        with self._transaction() as conn:
            return add_to_study(conn, study_uid, members, study, compose)

    @_guarded
    def get_study(self, study_uid: str) -> StudyRow | None:
        """A study's exam, SR and delivery state."""
        with self.engine.connect() as conn:
            return get_study(conn, study_uid)


def _row(row: Any) -> ResultRow:
    return ResultRow(
        source_sop_uid=row.source_sop_uid,
        model_name=row.model_name,
        model_version=row.model_version,
        sr_sop_uid=row.sr_sop_uid,
        result=json.loads(row.result_json),
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        sender=row.sender,
        content_sha256=row.content_sha256,
        study_uid=row.study_uid,
    )
