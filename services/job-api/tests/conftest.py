"""Fixtures for job-api tests against the real PostgreSQL and RabbitMQ.

One database (and role) per test session, migrated once and emptied between tests; one broker
namespace (a unique name prefix for every exchange and queue) per test, deleted afterwards.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from job_api_testing import (
    ADMIN_DSN,
    AMQP_URL,
    JWT_SECRET,
    TABLES,
    WORKER_KEY,
    delete_queues_named,
    enroll_worker,
    running_app,
)

from contracts.enums import GPUProvider, JobType
from contracts.routing import BrokerNames
from job_api.config import Settings
from job_api.entrypoints.cli import migrate
from job_api.entrypoints.workers import queue_specs
from messaging.broker import Broker
from messaging.topology import delete_topology
from servicekit.db import bootstrap_service_database, drop_database, make_engine, with_credentials
from workerlink.link import BrokerLink


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    name = f"ftd_test_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    await bootstrap_service_database(
        ADMIN_DSN, database=name, role=name, password=password, schema="jobs"
    )
    url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
    try:
        await asyncio.to_thread(migrate, url)
        yield url
    finally:
        await drop_database(ADMIN_DSN, name, roles=[name])


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[sa.ext.asyncio.AsyncEngine]:
    engine = make_engine(database_url, application_name="job-api-tests", pool_size=2)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def broker_prefix() -> AsyncIterator[str]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    yield prefix
    broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="test-teardown")
    await broker.connect()
    channel = await broker.channel()
    specs = queue_specs(broker)
    await delete_topology(
        channel, broker.names, [s.name for s in specs], [s.exchange for s in specs if s.exchange]
    )
    await broker.close()
    # Private pools' queues, and anything else a test declared under the prefix.
    await delete_queues_named(prefix)


@pytest.fixture
def settings_factory(database_url: str, broker_prefix: str, db: Any) -> Callable[..., Settings]:
    """Settings for an app on the test database, emptied first (via `db`)."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "amqp_url": AMQP_URL,
            "broker_prefix": broker_prefix,
            "jwt_secret": JWT_SECRET,
            "worker_key": WORKER_KEY,
            # The brief's shared-key worker API (development's default); tests of enrolled
            # workers and of a deployment that turns it off set it to False.
            "allow_shared_worker_key": True,
            # Encrypts linked Hub tokens; required outside development.
            "secrets_key": f"test-secrets-key-{uuid.uuid4().hex}",
            # Outside development a ticket secret of its own and no `_dev` password are required.
            "data_ticket_secret": f"test-ticket-secret-{uuid.uuid4().hex}",
            "db_password": uuid.uuid4().hex,
            "enable_offline_models": True,
            # https training data URLs are on by default in development only.
            "allow_external_data_urls": True,
            "lease_seconds": 30,
            "watchdog_interval": 0.2,
            "presence_interval": 0.2,
            "db_pool_size": 5,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
async def client(db: Any, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as c:
        yield c


@pytest.fixture
async def make_worker(
    broker_prefix: str, db: sa.ext.asyncio.AsyncEngine
) -> AsyncIterator[Callable[..., Awaitable[BrokerLink]]]:
    """A worker's link (the one worker-side client, as gpu-worker runs it), enrolled in the shared
    pool (or `owner`'s private pool), consuming its queues (those of the hardware classes its
    `gpu_memory_gb` satisfies: a CPU's by default)."""
    started: list[BrokerLink] = []

    async def make(
        name: str = "w1",
        provider: GPUProvider = GPUProvider.LOCAL,
        job_types: tuple[JobType, ...] = tuple(JobType),
        *,
        owner: str | None = None,
        amqp_url: str = AMQP_URL,
        gpu_memory_gb: int | None = None,
    ) -> BrokerLink:
        identity = await enroll_worker(db, name=name, owner=owner)
        link = BrokerLink(
            amqp_url,
            BrokerNames(broker_prefix),
            identity=identity,
            provider=provider,
            job_types=job_types,
            gpu_memory_gb=gpu_memory_gb,
        )
        await link.connect()
        await link.resume_offers()
        started.append(link)
        return link

    yield make
    for link in started:
        with contextlib.suppress(Exception):
            await link.close(flush_timeout=1)


@pytest.fixture
async def publisher(broker_prefix: str) -> AsyncIterator[Broker]:
    """A connection in the test's namespace that publishes as another service would (a
    data-service event, a raw message): not the worker's client."""
    broker = Broker(AMQP_URL, BrokerNames(broker_prefix), client_name="test-publisher")
    await broker.connect()
    yield broker
    await broker.close()
