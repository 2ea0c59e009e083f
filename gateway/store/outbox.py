"""The SRs waiting for the PACS, in two tables with the same delivery columns: ``studies`` (one
SR per study) and ``results`` (per-instance SRs left by the release before studies).

A worker *claims* a due row with a lease (``lease_owner``, ``lease_expires_at``) in one
``UPDATE ... WHERE key IN (SELECT ... FOR UPDATE SKIP LOCKED)`` (SQLite, one writer at a time,
ignores the row lock). While the lease runs no other replica claims the row; a crashed
replica's lease expires and another one sends the SR again, which the PACS takes as the same
instance (SR UIDs derive from the sources). Every function runs in the caller's connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from gateway.store.schema import results, studies

Kind = Literal["study", "instance"]


@dataclass(frozen=True)
class Delivery:
    """What the worker needs to send one SR; ``key``: the study or source instance UID."""

    key: str
    sr_sop_uid: str
    sr_bytes: bytes
    attempts: int
    kind: Kind = "instance"


@dataclass(frozen=True)
class Outbox:
    """One table of SRs to deliver."""

    kind: Kind
    table: sa.Table
    key: sa.Column[str]
    built_at: sa.Column[float]
    """When the row's current SR was built (the age of a pending row)."""

    def _pending(self) -> sa.ColumnElement[bool]:
        return sa.and_(self.table.c.status == "pending", self.table.c.sr_bytes.is_not(None))

    def claim(
        self, conn: sa.Connection, owner: str, now: float, lease_s: float, limit: int
    ) -> list[Delivery]:
        """Lease up to ``limit`` due pending rows to ``owner``, oldest first."""
        c = self.table.c
        free = sa.or_(c.lease_expires_at.is_(None), c.lease_expires_at <= now)
        due = (
            sa.select(self.key)
            .where(self._pending(), c.next_attempt_at <= now, free)
            .order_by(c.next_attempt_at, self.built_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed = conn.execute(
            sa.update(self.table)
            .where(self.key.in_(due.scalar_subquery()))
            .values(lease_owner=owner, lease_expires_at=now + lease_s)
            .returning(self.key, c.sr_sop_uid, c.sr_bytes, c.attempts, c.next_attempt_at)
        ).all()
        rows = sorted(claimed, key=lambda row: row.next_attempt_at)
        return [Delivery(r[0], r[1], bytes(r[2]), r[3], self.kind) for r in rows]

    def next_due_at(self, conn: sa.Connection) -> float | None:
        """When the earliest pending row can be claimed."""
        c = self.table.c
        leased_longer = sa.and_(
            c.lease_expires_at.is_not(None), c.lease_expires_at > c.next_attempt_at
        )
        claimable = sa.case((leased_longer, c.lease_expires_at), else_=c.next_attempt_at)
        value = conn.execute(sa.select(sa.func.min(claimable)).where(self._pending())).scalar()
        return None if value is None else float(value)

    def mark_delivered(self, conn: sa.Connection, key: str, sr_sop_uid: str, now: float) -> None:
        """Keep the JSON, drop the SR bytes and the lease (only if that SR is still current)."""
        c = self.table.c
        extra = {"delivered_sr_uid": sr_sop_uid} if self.kind == "study" else {}
        conn.execute(
            sa.update(self.table)
            .where(self.key == key, c.sr_sop_uid == sr_sop_uid, c.status == "pending")
            .values(
                status="delivered",
                delivered_at=now,
                sr_bytes=None,
                attempts=c.attempts + 1,
                last_error=None,
                lease_owner=None,
                lease_expires_at=None,
                **extra,
            )
        )
        if self.kind == "study":  # replaced while in flight: the PACS still has this one
            conn.execute(
                sa.update(self.table)
                .where(self.key == key, c.sr_sop_uid != sr_sop_uid)
                .values(delivered_sr_uid=sr_sop_uid)
            )

    def mark_failed(
        self,
        conn: sa.Connection,
        owner: str,
        key: str,
        sr_sop_uid: str,
        error: str,
        next_attempt_at: float,
    ) -> None:
        """Count the attempt, keep its error code, free the row until ``next_attempt_at``."""
        c = self.table.c
        conn.execute(
            sa.update(self.table)
            .where(
                self.key == key,
                c.sr_sop_uid == sr_sop_uid,
                c.lease_owner == owner,
                c.status == "pending",
            )
            .values(
                attempts=c.attempts + 1,
                last_error=error[:200],
                next_attempt_at=next_attempt_at,
                lease_owner=None,
                lease_expires_at=None,
            )
        )

    def release(self, conn: sa.Connection, owner: str) -> int:
        """Give up ``owner``'s leases."""
        c = self.table.c
        return int(
            conn.execute(
                sa.update(self.table)
                .where(c.lease_owner == owner, c.status == "pending")
                .values(lease_owner=None, lease_expires_at=None)
            ).rowcount
        )

    def stats(self, conn: sa.Connection) -> tuple[int, float | None]:
        """(pending rows, when the oldest pending SR was built)."""
        row = conn.execute(
            sa.select(sa.func.count(), sa.func.min(self.built_at)).where(self._pending())
        ).one()
        return int(row[0]), (None if row[1] is None else float(row[1]))


OUTBOXES = (
    Outbox("study", studies, studies.c.study_uid, studies.c.updated_at),
    Outbox("instance", results, results.c.source_sop_uid, results.c.created_at),
)
BY_KIND: dict[Kind, Outbox] = {box.kind: box for box in OUTBOXES}
