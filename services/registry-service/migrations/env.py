"""Alembic environment for the `registry` schema (its version table lives there too)."""

from registry_service.adapters.tables import SCHEMA, metadata
from servicekit.migrations import run_migrations

run_migrations(metadata, SCHEMA)
