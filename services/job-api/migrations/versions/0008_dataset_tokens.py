"""dataset tokens: the projection keeps dataset.validated's estimated token count, and completed
jobs are indexed by type and base model (the dry run's throughput history)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("known_datasets", sa.Column("estimated_tokens", sa.BigInteger()), schema="jobs")
    op.create_index(
        "ix_jobs_completed_model",
        "jobs",
        ["job_type", "base_model", sa.text("completed_at DESC")],
        schema="jobs",
        postgresql_where=sa.text("status = 'completed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_completed_model", table_name="jobs", schema="jobs")
    op.drop_column("known_datasets", "estimated_tokens", schema="jobs")
