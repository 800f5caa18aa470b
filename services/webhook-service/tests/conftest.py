"""Fixtures for webhook-service tests against the real PostgreSQL and RabbitMQ (servicekit's
testing helpers): one database per session, emptied between tests; one broker namespace per
test; a receiver on 127.0.0.1 (the settings allow http to the loopback, as in development)."""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from webhook_testing import TABLES, Receiver, receiver

from servicekit.testing import (
    AMQP_URL,
    JWT_SECRET,
    broker_prefix_fixture,
    database_fixture,
    engine_fixture,
)
from webhook_service.config import Settings
from webhook_service.entrypoints.cli import migrate
from webhook_service.entrypoints.workers import queue_specs

webhooks_database_url = database_fixture(
    "webhooks_database_url", schema="webhooks", migrate=migrate
)
webhooks_db = engine_fixture("webhooks_db", database="webhooks_database_url", tables=TABLES)
webhooks_prefix = broker_prefix_fixture("webhooks_prefix", queues=queue_specs)

SECRETS_KEY = "test-webhook-secrets-key-5f0c9a7e1b3d"


@pytest.fixture
def webhook_settings(
    webhooks_database_url: str, webhooks_prefix: str, webhooks_db: Any
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": webhooks_database_url,
            "amqp_url": AMQP_URL,
            "broker_prefix": webhooks_prefix,
            "jwt_secret": JWT_SECRET,
            "db_password": uuid.uuid4().hex,
            "db_pool_size": 6,
            "secrets_key": SECRETS_KEY,
            "allow_http_loopback": True,
            # Quick retries: the schedule's shape is the unit tests' business.
            "retry_delays": (0.2,) * 7,
            "sender_poll_seconds": 0.05,
            "delivery_timeout_seconds": 5,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def hooks() -> AsyncIterator[Receiver]:
    async with receiver() as rec:
        yield rec
