"""Fixtures for registry-service tests against the real PostgreSQL and RabbitMQ (servicekit's
testing helpers): one database (and role) per test session, migrated once and emptied between
tests; one broker namespace (a unique name prefix for every exchange and queue) per test, deleted
afterwards."""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from registry_testing import AMQP_URL, JWT_SECRET, TABLES, running_app

from registry_service.config import Settings
from registry_service.entrypoints.cli import migrate
from registry_service.entrypoints.workers import queue_specs
from servicekit.testing import broker_prefix_fixture, database_fixture, engine_fixture

registry_database_url = database_fixture(
    "registry_database_url", schema="registry", migrate=migrate
)
registry_db = engine_fixture("registry_db", database="registry_database_url", tables=TABLES)
registry_prefix = broker_prefix_fixture("registry_prefix", queues=queue_specs)


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
            "serve_base_url": "http://model-server.test:8005/v1",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def registry(registry_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    async with running_app(registry_settings()) as client:
        yield client
