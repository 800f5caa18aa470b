"""data schema: datasets, the jobs that use them, outbox, inbox

Revision ID: 0001
Revises:
Create Date: 2026-12-02 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

from messaging.outbox import notify_trigger_sql

# Literal values, not imports of the live module: a migration is frozen once released.
SCHEMA = "data"
OUTBOX_CHANNEL = "data_outbox"
TRIGGER_UP, TRIGGER_DOWN = notify_trigger_sql(SCHEMA, OUTBOX_CHANNEL)

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("storage_key", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("shape", sa.Text, nullable=False),
        sa.Column("job_types", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("columns", pg.ARRAY(sa.Text), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("stats", pg.JSONB, nullable=False),
        sa.Column("report", pg.JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "datasets_user_created",
        "datasets",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
        schema=SCHEMA,
    )
    op.create_table(
        "dataset_jobs",
        sa.Column("job_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("dataset_id", pg.UUID(as_uuid=True)),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("ended", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "dataset_jobs_active",
        "dataset_jobs",
        ["dataset_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("NOT ended"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("routing_key", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("must_route", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=SCHEMA,
    )
    for statement in TRIGGER_UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in TRIGGER_DOWN:
        op.execute(statement)
    op.drop_table("inbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_index("dataset_jobs_active", table_name="dataset_jobs", schema=SCHEMA)
    op.drop_table("dataset_jobs", schema=SCHEMA)
    op.drop_index("datasets_user_created", table_name="datasets", schema=SCHEMA)
    op.drop_table("datasets", schema=SCHEMA)
