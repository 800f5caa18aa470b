"""SQL tables of the `jobs` schema (Alembic migrations mirror these)."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from messaging.inbox import inbox_table
from messaging.outbox import outbox_sequences_table, outbox_table

SCHEMA = "jobs"
OUTBOX_CHANNEL = "jobs_outbox"
JOB_EVENTS_CHANNEL = "jobs_job_events"

metadata = sa.MetaData(schema=SCHEMA)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("project_id", sa.Text),
    sa.Column("job_type", sa.Text, nullable=False),
    sa.Column("base_model", sa.Text, nullable=False),
    sa.Column("training_data_url", sa.Text, nullable=False),
    sa.Column("dataset_id", pg.UUID(as_uuid=True)),
    sa.Column("output_model", sa.Text, nullable=False),
    sa.Column("output_revision", sa.Text),
    sa.Column("gpu_provider", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("phase", sa.Text, nullable=False),
    sa.Column("progress", sa.Float, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    sa.Column("failure_class", sa.Text),
    sa.Column("logs_url", sa.Text),
    sa.Column("hyperparameters", pg.JSONB, nullable=False),
    sa.Column("metrics", pg.JSONB, nullable=False, server_default="{}"),
    sa.Column("step", sa.Integer),
    sa.Column("total_steps", sa.Integer),
    sa.Column("epoch", sa.Float),
    sa.Column("eta_seconds", sa.Float),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("worker_id", sa.Text),
    sa.Column("claim_id", pg.UUID(as_uuid=True)),
    # sha256 (hex) of the current attempt's claim secret; the secret itself is never stored.
    sa.Column("claim_secret_hash", sa.Text),
    # The job types the holding worker serves (its claim's): busy, it still serves those routes.
    sa.Column("worker_job_types", pg.ARRAY(sa.Text)),
    # The last `sequence` given to an event about this job (CloudEvents extension).
    sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    # When the job's latest work-queue message was published (create, requeue, re-dispatch).
    sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    # Which workers may run it (shared, private, any) and the owner's private pool key.
    sa.Column("worker_pool", sa.Text, nullable=False, server_default="shared"),
    sa.Column("owner_pool", sa.Text),
    # A retryable failure: the job is offered again at this moment (back-off), not at once.
    sa.Column("retry_at", sa.DateTime(timezone=True)),
    # What it needs to train (contracts.catalogue.HardwareClass), fixed at creation.
    sa.Column("hardware_class", sa.Text, nullable=False, server_default="cpu"),
    sa.CheckConstraint(
        "status IN ('pending','running','completed','failed','cancelled')", name="status_known"
    ),
    sa.CheckConstraint("progress >= 0 AND progress <= 100", name="progress_range"),
    sa.Index("ix_jobs_user_created", "user_id", sa.text("created_at DESC"), sa.text("id DESC")),
    sa.Index(
        "ix_jobs_running_lease", "lease_expires_at", postgresql_where=sa.text("status = 'running'")
    ),
    sa.Index(
        "ix_jobs_pending_dispatched",
        "dispatched_at",
        postgresql_where=sa.text("status = 'pending'"),
    ),
    sa.Index(
        "ix_jobs_pending_retry",
        "retry_at",
        postgresql_where=sa.text("status = 'pending' AND retry_at IS NOT NULL"),
    ),
    # The dry run's throughput history: the newest completed jobs of a type and base model.
    sa.Index(
        "ix_jobs_completed_model",
        "job_type",
        "base_model",
        sa.text("completed_at DESC"),
        postgresql_where=sa.text("status = 'completed'"),
    ),
    sa.Index(
        "ix_jobs_pending_route",
        "job_type",
        "gpu_provider",
        postgresql_where=sa.text("status = 'pending'"),
    ),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "job_id",
        pg.UUID(as_uuid=True),
        sa.ForeignKey(jobs.c.id, ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("data", pg.JSONB, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("ix_job_events_job", "job_id", "id"),
    sa.Index("ix_job_events_user", "user_id", "id"),
    sa.Index("ix_job_events_created", "created_at"),
)

# Datasets job-api has heard of through dataset.validated / dataset.deleted (a local projection:
# job-api never reads data-service's schema).
known_datasets = sa.Table(
    "known_datasets",
    metadata,
    sa.Column("dataset_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("job_types", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    # What dataset.validated said about the file: handed to the worker to verify its download.
    sa.Column("sha256", sa.Text),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("format", sa.Text),
    # The upload's rough token count (None from an older data-service): time estimates.
    sa.Column("estimated_tokens", sa.BigInteger),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# POST /jobs with an `Idempotency-Key`: the job a (user, key) created, and a hash of the body that
# created it (a different body with the same key is refused). Pruned after a retention period.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("job_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index("ix_idempotency_keys_created", "created_at"),
)

# Enrolled workers: one credential each (only the sha256 of its token is kept), in the shared pool
# or a user's private pool, revocable. The registry part (last seen, state, what it serves) comes
# from its heartbeats.
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("pool", sa.Text, nullable=False),
    sa.Column("owner_id", sa.Text),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("token_hash", sa.Text, nullable=False),
    sa.Column("broker_user", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("last_seen_at", sa.DateTime(timezone=True)),
    # `sent_at` of the newest heartbeat applied: an older one arriving late changes nothing.
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("state", sa.Text),
    sa.Column("current_job_id", pg.UUID(as_uuid=True)),
    sa.Column("provider", sa.Text),
    sa.Column("job_types", pg.ARRAY(sa.Text)),
    sa.Column("hardware", sa.Text),
    # Its largest GPU's memory (GB) as its heartbeats advertise it; NULL: no GPU (or not said).
    sa.Column("gpu_memory_gb", sa.Integer),
    sa.Column("version", sa.Text),
    sa.CheckConstraint("state IN ('idle','busy','stopping')", name="worker_state_known"),
    sa.Index("ix_workers_pool", "pool"),
    sa.Index("ix_workers_owner", "owner_id"),
)

# Organisation namespaces an admin granted a user: they may name output models `<namespace>/...`.
# Hub names are compared without regard to case (one grant per user and name, whatever case).
namespace_grants = sa.Table(
    "namespace_grants",
    metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("namespace", sa.Text, primary_key=True),
    sa.Column("granted_by", sa.Text, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Index(
        "uq_namespace_grants_user_namespace", "user_id", sa.text("lower(namespace)"), unique=True
    ),
    sa.Index("ix_namespace_grants_namespace", sa.text("lower(namespace)")),
)

# A user's linked Hugging Face account: the Hub user name its token belongs to (a namespace they
# hold) and the token, Fernet-encrypted (the plaintext is never stored).
hf_accounts = sa.Table(
    "hf_accounts",
    metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("hf_username", sa.Text, nullable=False),
    sa.Column("token_ciphertext", sa.Text, nullable=False),
    sa.Column(
        "linked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

outbox = outbox_table(metadata)
# The last `sequence` of each job's events (the outbox numbers them).
outbox_sequences = outbox_sequences_table(metadata)
inbox = inbox_table(metadata)
# Pruning deletes by age: without this index each prune scanned the whole inbox.
sa.Index("ix_inbox_processed_at", inbox.c.processed_at)
