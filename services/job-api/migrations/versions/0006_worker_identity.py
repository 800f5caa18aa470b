"""worker identity: enrolled workers (one credential each, revocable, in a pool), the pool a job
targets, and the moment a retried job is offered again

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("pool", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("broker_user", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column("current_job_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("job_types", postgresql.ARRAY(sa.Text()), nullable=True),
        sa.Column("hardware", sa.Text(), nullable=True),
        sa.Column("version", sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('idle','busy','stopping')", name="worker_state_known"),
        schema="jobs",
    )
    op.create_index("ix_workers_pool", "workers", ["pool"], schema="jobs")
    op.create_index("ix_workers_owner", "workers", ["owner_id"], schema="jobs")
    op.add_column(
        "jobs",
        sa.Column("worker_pool", sa.Text(), nullable=False, server_default="shared"),
        schema="jobs",
    )
    op.add_column("jobs", sa.Column("owner_pool", sa.Text(), nullable=True), schema="jobs")
    op.add_column(
        "jobs", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True), schema="jobs"
    )
    op.create_index(
        "ix_jobs_pending_retry",
        "jobs",
        ["retry_at"],
        schema="jobs",
        postgresql_where=sa.text("status = 'pending' AND retry_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_pending_retry", table_name="jobs", schema="jobs")
    op.drop_column("jobs", "retry_at", schema="jobs")
    op.drop_column("jobs", "owner_pool", schema="jobs")
    op.drop_column("jobs", "worker_pool", schema="jobs")
    op.drop_index("ix_workers_owner", table_name="workers", schema="jobs")
    op.drop_index("ix_workers_pool", table_name="workers", schema="jobs")
    op.drop_table("workers", schema="jobs")
