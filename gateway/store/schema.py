"""The store's live schema (SQLAlchemy Core): what the code reads and writes.

Version 1 of the store holds what the PACS outbox (the per-pod SQLite file it replaced, schema v2)
held, plus nullable lease columns so several gateway replicas can share delivery: a worker
claims a due row by setting ``lease_owner`` and ``lease_expires_at``; an expired lease is free
again. Times are UNIX seconds (floats), as in the outbox.

Version 2 adds ``studies`` (issue 17): one row per PACS study, its exam result and the one
Comprehensive SR that says it, delivered by the same lease mechanism. A ``results`` row of an
instance that belongs to a study names it in ``study_uid`` and has no SR of its own (written as
``delivered`` with no bytes, so no worker, of this release or the one before, sends it).

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
    # Version 2: the study this instance's result belongs to (None: a per-instance SR of v1).
    sa.Column("study_uid", sa.String(64), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'delivered')", name="results_status"),
)

# The delivery worker's scan: due pending rows in order.
sa.Index("results_due", results.c.status, results.c.next_attempt_at)
sa.Index("results_study", results.c.study_uid)

studies = sa.Table(
    "studies",
    metadata,
    sa.Column("study_uid", sa.String(64), primary_key=True),
    # The model that graded the study's latest instances (the SR's algorithm).
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    # The instances, in the order received, each with its eye and result (no patient data).
    sa.Column("members_json", sa.Text, nullable=False),
    # The exam served by GET /v1/studies/{uid} and said by the current SR (no patient data).
    sa.Column("exam_json", sa.Text, nullable=False),
    # The current SR, its bytes until the PACS accepts it, the SR it replaces, the last one
    # the PACS accepted.
    sa.Column("sr_sop_uid", sa.String(64), nullable=True),
    sa.Column("sr_bytes", sa.LargeBinary, nullable=True),
    sa.Column("replaces_sr_uid", sa.String(64), nullable=True),
    sa.Column("delivered_sr_uid", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # First attempt: the settle deadline (DRG_PACS_STUDY_SETTLE_S after the last instance).
    sa.Column("next_attempt_at", sa.Double, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("delivered_at", sa.Double, nullable=True),
    sa.Column("sender", sa.String(200), nullable=True),
    # SHA-256 of study UID + Patient ID: a later instance naming another patient is refused.
    sa.Column("patient_digest", sa.String(64), nullable=True),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_expires_at", sa.Double, nullable=True),
    sa.CheckConstraint("status IN ('pending', 'delivered')", name="studies_status"),
)
sa.Index("studies_due", studies.c.status, studies.c.next_attempt_at)
