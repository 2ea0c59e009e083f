"""One ``results`` row per source instance: the atomic put decision, inside a caller's
transaction (``ResultStore.put`` for a per-instance row, ``studies.add_to_study`` for the
instances of a study)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.schema import results

PutOutcome = Literal["stored", "duplicate", "conflict"]


class RowVanished(RuntimeError):
    """A conflicting row was deleted twice between the insert and the lock (retention)."""


def insert_ignoring(conn: sa.Connection, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect; its rowcount kept
    (SQLAlchemy memoizes it only for UPDATE/DELETE: psycopg then reports -1)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing().execution_options(preserve_rowcount=True)


def compare(stored_sha256: str | None, content_sha256: str, same_model: bool) -> PutOutcome:
    """What a resend is, given the stored row's digest (None: a row from an old outbox)."""
    if stored_sha256 is not None and stored_sha256 != content_sha256:
        return "conflict"
    return "duplicate" if same_model else "stored"


def put_result(
    conn: sa.Connection,
    source_sop_uid: str,
    values: dict[str, Any],
    *,
    sender: str | None,
) -> PutOutcome:
    """Insert the row, or decide against the one there (locked): ``conflict`` (other content:
    nothing changes), ``duplicate`` (same content and model version) or ``stored`` (new, or
    re-graded by another model version: the row is replaced, its first sender stays).

    ``values``: every column but the key and ``sender``; it must hold ``model_name``,
    ``model_version`` and ``content_sha256``.
    """
    # One round trip for a new instance; on a conflict, lock the row there and decide (twice
    # at most: the retention purge may delete a delivered row in between).
    for _ in range(2):
        inserted = conn.execute(
            insert_ignoring(conn, results)
            .values(source_sop_uid=source_sop_uid, sender=sender, **values)
            .returning(results.c.source_sop_uid)
        ).first()
        if inserted is not None:
            return "stored"
        existing = conn.execute(
            sa.select(results.c.model_name, results.c.model_version, results.c.content_sha256)
            .where(results.c.source_sop_uid == source_sop_uid)
            .with_for_update()
        ).one_or_none()
        if existing is not None:
            break
    else:
        raise RowVanished("results store: a row vanished twice during one put")
    same_model = (existing.model_name, existing.model_version) == (
        values["model_name"],
        values["model_version"],
    )
    outcome = compare(existing.content_sha256, values["content_sha256"], same_model)
    if outcome == "stored":
        conn.execute(
            sa.update(results)
            .where(results.c.source_sop_uid == source_sop_uid)
            .values(sender=sa.func.coalesce(results.c.sender, sender), **values)
        )
    return outcome
