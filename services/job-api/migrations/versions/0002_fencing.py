"""fencing: claim secret hash, per-job event sequence, dataset file facts for data tickets

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 18:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("claim_secret_hash", sa.Text(), nullable=True), schema="jobs")
    op.add_column(
        "jobs",
        sa.Column("event_sequence", sa.BigInteger(), server_default="0", nullable=False),
        schema="jobs",
    )
    op.add_column("known_datasets", sa.Column("sha256", sa.Text(), nullable=True), schema="jobs")
    op.add_column(
        "known_datasets", sa.Column("size_bytes", sa.BigInteger(), nullable=True), schema="jobs"
    )
    op.add_column("known_datasets", sa.Column("format", sa.Text(), nullable=True), schema="jobs")


def downgrade() -> None:
    for column in ("format", "size_bytes", "sha256"):
        op.drop_column("known_datasets", column, schema="jobs")
    op.drop_column("jobs", "event_sequence", schema="jobs")
    op.drop_column("jobs", "claim_secret_hash", schema="jobs")
