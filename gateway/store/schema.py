"""The store's live schema (SQLAlchemy Core): what the code reads and writes.

Version 1 of the store holds what the PACS outbox (the per-pod SQLite file it replaced, schema v2)
held, plus nullable lease columns so several gateway replicas can share delivery: a worker
claims a due row by setting ``lease_owner`` and ``lease_expires_at``; an expired lease is free
again. Times are UNIX seconds (floats), as in the outbox.

The migrations in ``migrations/versions`` never import this module (a later change here must not
rewrite history); a test checks that the migrated database and these tables match.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

STATUSES = ("pending", "delivered")

results = sa.Table(
    "results",
    metadata,
    # The source instance graded; one result per SOP Instance UID (DICOM UIDs are <= 64 chars).
    sa.Column("source_sop_uid", sa.String(64), primary_key=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("sr_sop_uid", sa.String(64), nullable=False),
    # The JSON served by GET /v1/results/{uid}: no patient data.
    sa.Column("result_json", sa.Text, nullable=False),
    # The Structured Report to deliver; NULL once the PACS accepted it (no patient data at rest).
    sa.Column("sr_bytes", sa.LargeBinary, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Double, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("delivered_at", sa.Double, nullable=True),
    # The API client that sent the instance, and the digest of its content (resend detection).
    sa.Column("sender", sa.String(200), nullable=True),
    sa.Column("content_sha256", sa.String(64), nullable=True),
    # Lease-based delivery: who is sending this row now, and until when.
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_expires_at", sa.Double, nullable=True),
    sa.CheckConstraint("status IN ('pending', 'delivered')", name="results_status"),
)

# The delivery worker's scan: due pending rows in order.
sa.Index("results_due", results.c.status, results.c.next_attempt_at)
