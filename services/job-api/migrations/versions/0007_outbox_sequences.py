"""outbox sequences: the outbox numbers each job's events (jobs.outbox_sequences) instead of the
job row's event_sequence

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox_sequences",
        sa.Column("subject", sa.Text(), primary_key=True),
        sa.Column("last", sa.BigInteger(), nullable=False),
        schema="jobs",
    )
    # Each job's numbering goes on from where its row left it.
    op.execute(
        "INSERT INTO jobs.outbox_sequences (subject, last) "
        "SELECT id::text, event_sequence FROM jobs.jobs WHERE event_sequence > 0"
    )
    op.drop_column("jobs", "event_sequence", schema="jobs")


def downgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("event_sequence", sa.BigInteger(), server_default="0", nullable=False),
        schema="jobs",
    )
    op.execute(
        "UPDATE jobs.jobs AS j SET event_sequence = s.last "
        "FROM jobs.outbox_sequences AS s WHERE s.subject = j.id::text"
    )
    op.drop_table("outbox_sequences", schema="jobs")
