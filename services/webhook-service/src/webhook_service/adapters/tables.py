"""SQL tables of the `webhooks` schema (Alembic migrations mirror these)."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from messaging.inbox import inbox_table

SCHEMA = "webhooks"

metadata = sa.MetaData(schema=SCHEMA)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event_types", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    # The signing secret, Fernet-encrypted with the service's secrets key (adapters.cipher).
    sa.Column("secret_ciphertext", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_webhooks_user_created", "user_id", sa.text("created_at DESC"), sa.text("id DESC")),
)

# The outbox of deliveries: one row per (webhook, event), written in the transaction that records
# the event in the inbox; the sender sends the due ones.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column(
        "webhook_id",
        pg.UUID(as_uuid=True),
        sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    # The exact bytes sent (and signed) on every attempt.
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retries", sa.Boolean, nullable=False, server_default=sa.true()),
    # When the sender takes it next: due while in the past; moved ahead while an attempt runs.
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("status IN ('pending','delivered','failed')", name="status_known"),
    sa.UniqueConstraint("webhook_id", "event_id", name="uq_deliveries_webhook_event"),
    sa.Index(
        "ix_deliveries_webhook_created",
        "webhook_id",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "ix_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
)

# The delivery log: one row per attempt.
attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column(
        "delivery_id",
        pg.UUID(as_uuid=True),
        sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_retry_at", sa.DateTime(timezone=True)),
)

inbox = inbox_table(metadata)
