"""Store version 1: the PACS outbox's results table (outbox schema v2) plus lease columns.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``results`` and its due-row index."""
    op.create_table(
        "results",
        sa.Column("source_sop_uid", sa.String(64), primary_key=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("sr_sop_uid", sa.String(64), nullable=False),
        sa.Column("result_json", sa.Text, nullable=False),
        sa.Column("sr_bytes", sa.LargeBinary, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Double, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("delivered_at", sa.Double, nullable=True),
        sa.Column("sender", sa.String(200), nullable=True),
        sa.Column("content_sha256", sa.String(64), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.Double, nullable=True),
        sa.CheckConstraint("status IN ('pending', 'delivered')", name="results_status"),
    )
    op.create_index("results_due", "results", ["status", "next_attempt_at"])


def downgrade() -> None:
    """Drop what ``upgrade`` created."""
    op.drop_index("results_due", table_name="results")
    op.drop_table("results")
