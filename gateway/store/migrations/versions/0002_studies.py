"""Store version 2: ``studies`` (one exam and one SR per PACS study) and ``results.study_uid``.

Additive only: the release before it still starts on this schema (it warns of a newer schema),
and never sends a study member's row (those are written ``delivered`` with no SR bytes).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``studies`` and its due-row index; add ``results.study_uid`` and its index."""
    op.create_table(
        "studies",
        sa.Column("study_uid", sa.String(64), primary_key=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("members_json", sa.Text, nullable=False),
        sa.Column("exam_json", sa.Text, nullable=False),
        sa.Column("sr_sop_uid", sa.String(64), nullable=True),
        sa.Column("sr_bytes", sa.LargeBinary, nullable=True),
        sa.Column("replaces_sr_uid", sa.String(64), nullable=True),
        sa.Column("delivered_sr_uid", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("delivered_at", sa.Double, nullable=True),
        sa.Column("sender", sa.String(200), nullable=True),
        sa.Column("patient_digest", sa.String(64), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.Double, nullable=True),
        sa.CheckConstraint("status IN ('pending', 'delivered')", name="studies_status"),
    )
    op.create_index("studies_due", "studies", ["status", "next_attempt_at"])
    op.add_column("results", sa.Column("study_uid", sa.String(64), nullable=True))
    op.create_index("results_study", "results", ["study_uid"])


def downgrade() -> None:
    """Drop what ``upgrade`` created (SQLite drops a column by rebuilding the table)."""
    op.drop_index("results_study", table_name="results")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("study_uid")
    op.drop_index("studies_due", table_name="studies")
    op.drop_table("studies")
