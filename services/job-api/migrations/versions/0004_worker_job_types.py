"""worker job types: the routes a training worker still serves (presence of busy workers)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'jobs',
        sa.Column('worker_job_types', postgresql.ARRAY(sa.Text()), nullable=True),
        schema='jobs',
    )


def downgrade() -> None:
    op.drop_column('jobs', 'worker_job_types', schema='jobs')
