"""Fixtures for data-service tests against the real PostgreSQL and RabbitMQ (servicekit's testing
helpers): one database (and role) per test session, migrated once and emptied between tests; one
broker namespace per test; a storage folder per test."""

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from data_service_testing import AMQP_URL, JWT_SECRET, TABLES, TICKET_SECRET, served

from data_service.config import Settings
from data_service.entrypoints.app import create_app
from data_service.entrypoints.cli import migrate
from data_service.entrypoints.workers import queue_specs
from servicekit.testing import broker_prefix_fixture, database_fixture, engine_fixture

data_database_url = database_fixture("data_database_url", schema="data", migrate=migrate)
data_db = engine_fixture("data_db", database="data_database_url", tables=TABLES)
data_broker_prefix = broker_prefix_fixture("data_broker_prefix", queues=queue_specs)


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
