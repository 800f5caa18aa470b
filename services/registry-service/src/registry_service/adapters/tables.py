"""SQL tables of the `registry` schema (Alembic migrations mirror these)."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from messaging.inbox import inbox_table
from messaging.outbox import outbox_table

SCHEMA = "registry"
OUTBOX_CHANNEL = "registry_outbox"

metadata = sa.MetaData(schema=SCHEMA)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    # The job's output model `owner/name`; versions count per (user, name).
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("job_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("job_type", sa.Text, nullable=False),
    sa.Column("base_model", sa.Text, nullable=False),
    sa.Column("repo_id", sa.Text, nullable=False),
    sa.Column("revision", sa.Text, nullable=False),
    sa.Column("store", sa.Text, nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("project_id", sa.Text),
    sa.Column("dataset_id", pg.UUID(as_uuid=True)),
    sa.Column("metrics", pg.JSONB, nullable=False, server_default="{}"),
    sa.Column("baseline_metrics", pg.JSONB, nullable=False, server_default="{}"),
    sa.Column("data_stats", pg.JSONB, nullable=False, server_default="{}"),
    sa.Column("hyperparameters", pg.JSONB, nullable=False, server_default="{}"),
    sa.Column("status", sa.Text, nullable=False),
    # When the job completed (the model was made), and when the registry heard of it.
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deployed_at", sa.DateTime(timezone=True)),
    sa.Column("retired_at", sa.DateTime(timezone=True)),
    # The worker's push created the Hub repository for this version's owner: only then may
    # `delete_repo=true` delete it.
    sa.Column("created_repo", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.CheckConstraint("status IN ('registered','deployed','retired')", name="status_known"),
    sa.CheckConstraint("version >= 1", name="version_positive"),
    sa.UniqueConstraint("user_id", "name", "version", name="uq_models_user_name_version"),
    sa.Index("ix_models_user_created", "user_id", sa.text("created_at DESC"), sa.text("id DESC")),
    # The delete guard counts the versions naming a Hub repository (ids are case-insensitive).
    sa.Index("ix_models_repo", sa.text("lower(repo_id)")),
    # One deployed version per name: the LiteLLM model_name must mean one model.
    sa.Index(
        "uq_models_one_deployed",
        "user_id",
        "name",
        unique=True,
        postgresql_where=sa.text("status = 'deployed'"),
    ),
)

# The last version number handed out per (user, name); kept when versions are deleted, so a
# number is never reused for a different model.
model_names = sa.Table(
    "model_names",
    metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("last_version", sa.Integer, nullable=False),
)

# Jobs whose model was registered, kept after the model is deleted: a second model.completed for
# the same job (another event id, or one redelivered after the inbox forgot its id) registers
# nothing, and a deleted model never comes back.
registered_jobs = sa.Table(
    "registered_jobs",
    metadata,
    sa.Column("job_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("model_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column(
        "registered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
