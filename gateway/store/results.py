"""The results store: one row per graded source instance, shared by every gateway replica.

A row holds the JSON result (served by ``GET /v1/results/{uid}``, no patient data), the API
client that sent the instance, the digest of its content and, until the PACS accepts it, the SR
bytes (which do hold patient data: they are dropped on delivery). STOW-RS answers only after
the row is committed.

Delivery by N replicas: a worker *claims* a due row with a lease (``lease_owner``,
``lease_expires_at``) in one ``UPDATE ... WHERE uid IN (SELECT ... FOR UPDATE SKIP LOCKED)``
(SQLite, one writer at a time, ignores the row lock). While the lease runs no other replica
claims the row; a crashed replica's lease expires and another one sends the SR again, which the
PACS takes as the same instance (SR UIDs derive from the source instance).

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
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.config import DatabaseSettings
from gateway.store.engine import make_engine
from gateway.store.migrate import check_current, upgrade
from gateway.store.schema import results

Status = Literal["pending", "delivered"]
PutOutcome = Literal["stored", "duplicate", "conflict"]
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


@dataclass(frozen=True)
class Delivery:
    """What the worker needs to send one SR."""

    source_sop_uid: str
    sr_sop_uid: str
    sr_bytes: bytes
    attempts: int


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
)
_PENDING = results.c.status == "pending"
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
            # One round trip for a new instance; on a conflict, lock the row there and decide
            # (twice at most: the retention purge may delete a delivered row in between).
            for _ in range(2):
                inserted = conn.execute(
                    self._insert_new()
                    .values(source_sop_uid=source_sop_uid, sender=sender, **values)
                    .returning(results.c.source_sop_uid)
                ).first()
                if inserted is not None:
                    return "stored"
                existing = self._locked(conn, source_sop_uid)
                if existing is not None:
                    break
            else:
                raise StoreUnavailable("results store: a row vanished twice during one put")
            same_model = (existing.model_name, existing.model_version) == (
                model_name,
                model_version,
            )
            outcome = compare(existing.content_sha256, content_sha256, same_model)
            if outcome != "stored":
                return outcome
            conn.execute(
                sa.update(results)
                .where(results.c.source_sop_uid == source_sop_uid)
                .values(sender=sa.func.coalesce(results.c.sender, sender), **values)
            )
            return "stored"

    def _locked(self, conn: sa.Connection, source_sop_uid: str) -> Any:
        return conn.execute(
            sa.select(results.c.model_name, results.c.model_version, results.c.content_sha256)
            .where(results.c.source_sop_uid == source_sop_uid)
            .with_for_update()
        ).one_or_none()

    def _insert_new(self) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING`` in this engine's dialect; its rowcount kept
        (SQLAlchemy memoizes it only for UPDATE/DELETE: psycopg then reports -1)."""
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        insert = dialect.insert(results).on_conflict_do_nothing()
        return insert.execution_options(preserve_rowcount=True)

    @_guarded
    def claim(self, owner: str, now: float, lease_s: float, limit: int = 1) -> list[Delivery]:
        """Lease up to ``limit`` due pending rows to ``owner``, oldest first."""
        free = sa.or_(results.c.lease_expires_at.is_(None), results.c.lease_expires_at <= now)
        due = (
            sa.select(results.c.source_sop_uid)
            .where(_PENDING, results.c.next_attempt_at <= now, free)
            .order_by(results.c.next_attempt_at, results.c.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._transaction() as conn:
            claimed = conn.execute(
                sa.update(results)
                .where(results.c.source_sop_uid.in_(due.scalar_subquery()))
                .values(lease_owner=owner, lease_expires_at=now + lease_s)
                .returning(
                    results.c.source_sop_uid,
                    results.c.sr_sop_uid,
                    results.c.sr_bytes,
                    results.c.attempts,
                    results.c.next_attempt_at,
                )
            ).all()
        rows = sorted(claimed, key=lambda row: row.next_attempt_at)
        return [Delivery(r[0], r[1], bytes(r[2]), r[3]) for r in rows]

    @_guarded
    def next_due_at(self) -> float | None:
        """When the earliest pending row can be claimed (None when nothing is pending)."""
        leased_longer = sa.and_(
            results.c.lease_expires_at.is_not(None),
            results.c.lease_expires_at > results.c.next_attempt_at,
        )
        claimable = sa.case(
            (leased_longer, results.c.lease_expires_at), else_=results.c.next_attempt_at
        )
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.min(claimable)).where(_PENDING)).scalar()
        return None if value is None else float(value)

    @_guarded
    def mark_delivered(self, source_sop_uid: str, sr_sop_uid: str) -> None:
        """The PACS accepted the SR: keep the JSON result, drop the SR bytes and the lease."""
        with self._transaction() as conn:
            conn.execute(
                sa.update(results)
                .where(
                    results.c.source_sop_uid == source_sop_uid,
                    results.c.sr_sop_uid == sr_sop_uid,
                    _PENDING,
                )
                .values(
                    status="delivered",
                    delivered_at=time.time(),
                    sr_bytes=None,
                    attempts=results.c.attempts + 1,
                    last_error=None,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )

    @_guarded
    def mark_failed(
        self, owner: str, source_sop_uid: str, sr_sop_uid: str, error: str, next_attempt_at: float
    ) -> None:
        """An attempt failed: count it, remember why (a code, no patient data), free the row
        until ``next_attempt_at``. No-op when the lease has passed to another replica."""
        with self._transaction() as conn:
            conn.execute(
                sa.update(results)
                .where(
                    results.c.source_sop_uid == source_sop_uid,
                    results.c.sr_sop_uid == sr_sop_uid,
                    results.c.lease_owner == owner,
                    _PENDING,
                )
                .values(
                    attempts=results.c.attempts + 1,
                    last_error=error[:200],
                    next_attempt_at=next_attempt_at,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )

    @_guarded
    def release(self, owner: str) -> int:
        """Give up ``owner``'s leases (a clean stop): other replicas may send them at once."""
        with self._transaction() as conn:
            return conn.execute(
                sa.update(results)
                .where(results.c.lease_owner == owner, _PENDING)
                .values(lease_owner=None, lease_expires_at=None)
            ).rowcount

    @_guarded
    def stats(self) -> tuple[int, float | None]:
        """(number of pending results, creation time of the oldest pending one), store-wide."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(sa.func.count(), sa.func.min(results.c.created_at)).where(_PENDING)
            ).one()
        return int(row[0]), (None if row[1] is None else float(row[1]))

    @_guarded
    def purge(self, delivered_before: float) -> int:
        """Delete results delivered before the cutoff (retention); pending rows always stay."""
        with self._transaction() as conn:
            return conn.execute(
                sa.delete(results).where(
                    results.c.status == "delivered", results.c.delivered_at < delivered_before
                )
            ).rowcount


def compare(stored_sha256: str | None, content_sha256: str, same_model: bool) -> PutOutcome:
    """What a resend is, given the stored row's digest (None: a row from an old outbox)."""
    if stored_sha256 is not None and stored_sha256 != content_sha256:
        return "conflict"
    return "duplicate" if same_model else "stored"


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
    )
