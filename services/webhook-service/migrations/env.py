"""Alembic environment for the `webhooks` schema (its version table lives there too)."""

from servicekit.migrations import run_migrations
from webhook_service.adapters.tables import SCHEMA, metadata

run_migrations(metadata, SCHEMA)
