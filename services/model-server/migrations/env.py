"""Alembic environment for the `model_server` schema (its version table lives there too)."""

from model_server.adapters.tables import SCHEMA, metadata
from servicekit.migrations import run_migrations

run_migrations(metadata, SCHEMA)
