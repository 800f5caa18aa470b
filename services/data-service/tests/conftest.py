"""Fixtures for data-service tests against the real PostgreSQL and RabbitMQ.

One database (and role) per test session, migrated once and emptied between tests; one broker
namespace per test; a storage folder per test.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from data_service_testing import ADMIN_DSN, AMQP_URL, JWT_SECRET, TABLES, TICKET_SECRET, served
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.routing import BrokerNames
from data_service.config import Settings
from data_service.entrypoints.app import create_app
from data_service.entrypoints.cli import migrate
from data_service.entrypoints.workers import queue_specs
from messaging.broker import Broker
from messaging.topology import delete_topology
from servicekit.db import bootstrap_service_database, drop_database, make_engine, with_credentials


@pytest.fixture(scope="session")
async def data_database_url() -> AsyncIterator[str]:
    name = f"ftd_data_test_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    await bootstrap_service_database(
        ADMIN_DSN, database=name, role=name, password=password, schema="data"
    )
    url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
    try:
        await asyncio.to_thread(migrate, url)
        yield url
    finally:
        await drop_database(ADMIN_DSN, name, roles=[name])


@pytest.fixture
async def data_db(data_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(data_database_url, application_name="data-service-tests", pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)}"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def data_broker_prefix() -> AsyncIterator[str]:
    prefix = f"d{uuid.uuid4().hex[:8]}."
    yield prefix
    broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="test-teardown")
    await broker.connect()
    channel = await broker.channel()
    with contextlib.suppress(Exception):
        await delete_topology(channel, broker.names, [s.name for s in queue_specs(broker)])
    await broker.close()


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    path = tmp_path / "datasets"
    path.mkdir()
    return path


@pytest.fixture
def data_settings_factory(
    data_database_url: str, data_broker_prefix: str, data_db: Any, storage_dir: Path
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": data_database_url,
            "amqp_url": AMQP_URL,
            "broker_prefix": data_broker_prefix,
            "jwt_secret": JWT_SECRET,
            "data_ticket_secret": TICKET_SECRET,
            # Outside development the role's password must not be the `_dev` default.
            "db_password": uuid.uuid4().hex,
            "storage_dir": storage_dir,
            "db_pool_size": 4,
            "min_rows": 10,
            "access_log": False,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def data_settings(data_settings_factory: Callable[..., Settings]) -> Settings:
    return data_settings_factory()


@pytest.fixture
async def data_url(data_settings: Settings) -> AsyncIterator[str]:
    async with served(create_app(data_settings)) as url:
        yield url


@pytest.fixture
async def data_client(data_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=data_url, timeout=30) as client:
        yield client
