"""Migration 0002 on a database holding versions registered before it: a local model's worker
path becomes its `local://` URI, nobody's version counts as having created its repository, and
the migration goes down and up again."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from registry_testing import ADMIN_DSN

from registry_service.entrypoints.cli import alembic_config
from servicekit.db import bootstrap_service_database, drop_database, make_engine, with_credentials

pytestmark = pytest.mark.integration


@pytest.fixture
async def database_at_0001() -> AsyncIterator[str]:
    name = f"ftd_reg_mig_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    await bootstrap_service_database(
        ADMIN_DSN, database=name, role=name, password=password, schema="registry"
    )
    url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(url), "0001")
        yield url
    finally:
        await drop_database(ADMIN_DSN, name, roles=[name])


def _row(store: str, repo_id: str, revision: str, uri: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "id": uuid.uuid4(),
        "user_id": "alice",
        "name": repo_id,
        "version": 1,
        "job_id": uuid.uuid4(),
        "attempt": 1,
        "job_type": "embedding",
        "base_model": "base/model",
        "repo_id": repo_id,
        "revision": revision,
        "store": store,
        "uri": uri,
        "status": "registered",
        "created_at": now,
        "registered_at": now,
        "updated_at": now,
    }


async def test_0002_rewrites_local_paths_and_records_no_created_repo(database_at_0001: str) -> None:
    engine = make_engine(database_at_0001, application_name="registry-migration-test")
    columns = ", ".join(_row("hub", "a/b", "r", "u"))
    values = ", ".join(f":{c}" for c in _row("hub", "a/b", "r", "u"))
    insert = sa.text(f"INSERT INTO registry.models ({columns}) VALUES ({values})")  # noqa: S608
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert, _row("local", "alice/emb", "9c1e", "file:///srv/models/alice/emb/9c1e")
            )
            await conn.execute(insert, _row("hub", "alice/hub", "abc", "hf://alice/hub@abc"))
        cfg = alembic_config(database_at_0001)
        await asyncio.to_thread(command.upgrade, cfg, "head")
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text("SELECT repo_id, uri, created_repo FROM registry.models ORDER BY 1")
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("alice/emb", "local://alice/emb@9c1e", False),
            ("alice/hub", "hf://alice/hub@abc", False),
        ]
        await asyncio.to_thread(command.downgrade, cfg, "0001")
        await asyncio.to_thread(command.upgrade, cfg, "head")
    finally:
        await engine.dispose()
