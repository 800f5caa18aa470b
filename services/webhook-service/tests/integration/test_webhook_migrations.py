"""The migrations build exactly the tables the code declares, and go down and up again."""

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from servicekit.db import sqlalchemy_dsn
from webhook_service.adapters.tables import SCHEMA, metadata
from webhook_service.entrypoints.cli import alembic_config

pytestmark = pytest.mark.integration


def _include(name: str | None, type_: str, _parent: object) -> bool:
    if type_ == "schema":
        return name == SCHEMA
    return not (type_ == "table" and name == "alembic_version")


def _differences(conn: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"include_schemas": True, "include_name": _include}
    )
    return list(compare_metadata(context, metadata))


async def test_the_migrated_schema_is_the_declared_one(webhooks_database_url: str) -> None:
    # The role's search path starts at its schema; from `public` every name (foreign keys'
    # targets included) is compared schema-qualified on both sides.
    engine = create_async_engine(
        sqlalchemy_dsn(webhooks_database_url),
        connect_args={"server_settings": {"search_path": "public"}},
    )
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
        cfg = alembic_config(webhooks_database_url)
        await asyncio.to_thread(command.downgrade, cfg, "base")
        await asyncio.to_thread(command.upgrade, cfg, "head")
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await engine.dispose()
