"""Alembic environment for the `data` schema (its version table lives there too)."""

from data_service.adapters.tables import SCHEMA, metadata
from servicekit.migrations import run_migrations

run_migrations(metadata, SCHEMA)
