"""Fixtures for registry-service tests against the real PostgreSQL and RabbitMQ.

One database (and role) per test session, migrated once and emptied between tests; one broker
namespace (a unique name prefix for every exchange and queue) per test, deleted afterwards.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from registry_testing import ADMIN_DSN, AMQP_URL, JWT_SECRET, TABLES, running_app
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.routing import BrokerNames
from messaging.broker import Broker
from messaging.topology import delete_topology
from registry_service.config import Settings
from registry_service.entrypoints.cli import migrate
from registry_service.entrypoints.workers import queue_specs
from servicekit.db import bootstrap_service_database, drop_database, make_engine, with_credentials


@pytest.fixture(scope="session")
async def registry_database_url() -> AsyncIterator[str]:
    name = f"ftd_reg_test_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    await bootstrap_service_database(
        ADMIN_DSN, database=name, role=name, password=password, schema="registry"
    )
    url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
    try:
        await asyncio.to_thread(migrate, url)
        yield url
    finally:
        await drop_database(ADMIN_DSN, name, roles=[name])


@pytest.fixture
async def registry_db(registry_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(registry_database_url, application_name="registry-tests", pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)}"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def registry_prefix() -> AsyncIterator[str]:
    prefix = f"r{uuid.uuid4().hex[:8]}."
    yield prefix
    broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="registry-test-teardown")
    await broker.connect()
    channel = await broker.channel()
    await delete_topology(channel, broker.names, [s.name for s in queue_specs(broker)])
    await broker.close()


@pytest.fixture
def registry_settings(
    registry_database_url: str, registry_prefix: str, registry_db: Any
) -> Callable[..., Settings]:
    """Settings for an app on the test database, emptied first (via `registry_db`)."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": registry_database_url,
            "amqp_url": AMQP_URL,
            "broker_prefix": registry_prefix,
            "jwt_secret": JWT_SECRET,
            # Outside development the role's password must not be the `_dev` default.
            "db_password": uuid.uuid4().hex,
            "db_pool_size": 5,
            "lora_base_url": "http://vllm.test:8000/v1",
            "serve_base_url": "http://ftd-serve.test:8005/v1",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def registry(registry_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    async with running_app(registry_settings()) as client:
        yield client
