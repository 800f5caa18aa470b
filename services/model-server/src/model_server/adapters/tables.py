"""SQL tables of the `model_server` schema (Alembic migrations mirror these)."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from messaging.inbox import inbox_table

SCHEMA = "model_server"

metadata = sa.MetaData(schema=SCHEMA)

# The registry's deployed models as its events told them (model.deployed, model.deleted): what
# every replica loads. One row per model version; `changed_at` is the event's time, so an older
# event arriving late never overrides a newer one.
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("model_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    # `owner/name`: what callers pass as `model`.
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("revision", sa.Text),
    sa.Column("job_type", sa.Text, nullable=False),
    sa.Column("deployed", sa.Boolean, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_deployments_deployed", "deployed", "user_id"),
)

# Users' API keys `ftdk_<id>_<secret>`: only the secret's SHA-256 is kept.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("secret_sha256", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Index("ix_api_keys_user_id", "user_id"),
)

inbox = inbox_table(metadata)
