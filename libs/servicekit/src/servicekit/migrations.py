"""The Alembic environment every service's `migrations/env.py` runs:

    from registry_service.adapters.tables import SCHEMA, metadata
    from servicekit.migrations import run_migrations

    run_migrations(metadata, SCHEMA)

Migrations run online on the async driver, on the URL the service's CLI put in the Alembic config
(`sqlalchemy.url`), and see only the service's own schema, where its version table lives too.
"""

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine


def run_migrations(metadata: sa.MetaData, schema: str) -> None:
    """Run the migrations Alembic asked for (`upgrade`, `downgrade`) against `schema`."""
    asyncio.run(_online(metadata, schema))


def _configure_and_run(connection: sa.Connection, metadata: sa.MetaData, schema: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=True,
        include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online(metadata: sa.MetaData, schema: str) -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure_and_run, metadata, schema)
            await connection.commit()
    finally:
        await engine.dispose()
