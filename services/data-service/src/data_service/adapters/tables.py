"""SQL tables of the `data` schema (the Alembic migration mirrors these)."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from messaging.inbox import inbox_table
from messaging.outbox import outbox_table

SCHEMA = "data"
OUTBOX_CHANNEL = "data_outbox"

metadata = sa.MetaData(schema=SCHEMA)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    # For display only: never part of a path or a storage key.
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
    sa.Index("datasets_user_created", "user_id", sa.text("created_at DESC"), sa.text("id DESC")),
)

# What data-service knows about jobs from job-api's events: which dataset each uses, its latest
# attempt (a download ticket of an older attempt is stale) and whether it has ended.
dataset_jobs = sa.Table(
    "dataset_jobs",
    metadata,
    sa.Column("job_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("dataset_id", pg.UUID(as_uuid=True)),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("ended", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("dataset_jobs_active", "dataset_id", postgresql_where=sa.text("NOT ended")),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
