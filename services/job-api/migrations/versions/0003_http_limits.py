"""http limits: Idempotency-Key records, indexes for retention (inbox, history)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'idempotency_keys',
        sa.Column('user_id', sa.Text(), nullable=False),
        sa.Column('key', sa.Text(), nullable=False),
        sa.Column('request_hash', sa.Text(), nullable=False),
        sa.Column('job_id', sa.UUID(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('user_id', 'key'),
        schema='jobs',
    )
    op.create_index('ix_idempotency_keys_created', 'idempotency_keys', ['created_at'], schema='jobs')
    op.create_index('ix_inbox_processed_at', 'inbox', ['processed_at'], schema='jobs')
    op.create_index('ix_job_events_created', 'job_events', ['created_at'], schema='jobs')


def downgrade() -> None:
    op.drop_index('ix_job_events_created', table_name='job_events', schema='jobs')
    op.drop_index('ix_inbox_processed_at', table_name='inbox', schema='jobs')
    op.drop_index('ix_idempotency_keys_created', table_name='idempotency_keys', schema='jobs')
    op.drop_table('idempotency_keys', schema='jobs')
