"""hardware classes: what a job needs to train (its base model's), what a worker's GPU gives

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing jobs keep the route they were offered on (the CPU's, the only one there was).
    op.add_column(
        "jobs",
        sa.Column("hardware_class", sa.Text(), nullable=False, server_default="cpu"),
        schema="jobs",
    )
    op.add_column("workers", sa.Column("gpu_memory_gb", sa.Integer()), schema="jobs")


def downgrade() -> None:
    op.drop_column("workers", "gpu_memory_gb", schema="jobs")
    op.drop_column("jobs", "hardware_class", schema="jobs")
