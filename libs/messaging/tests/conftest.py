"""Fixtures for messaging tests against the real PostgreSQL and RabbitMQ.

One database (and role) per test session holding the `msg` schema of `messaging_testing`, emptied
between tests; one broker namespace (a unique prefix) per test, deleted afterwards.
"""

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from messaging_testing import (
    ADMIN_DSN,
    AMQP_URL,
    NOTIFY_CHANNEL,
    SCHEMA,
    TABLES,
    Topology,
    metadata,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.routing import BrokerNames
from messaging.broker import Broker
from messaging.outbox import notify_trigger_sql
from messaging.topology import delete_topology
from servicekit.db import (
    asyncpg_dsn,
    bootstrap_service_database,
    drop_database,
    make_engine,
    with_credentials,
)


@pytest.fixture(scope="session")
async def messaging_db_url() -> AsyncIterator[str]:
    name = f"ftd_msg_test_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    await bootstrap_service_database(
        ADMIN_DSN, database=name, role=name, password=password, schema=SCHEMA
    )
    url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
    try:
        engine = make_engine(url, application_name="messaging-tests-setup", pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
                for statement in notify_trigger_sql(SCHEMA, NOTIFY_CHANNEL)[0]:
                    await conn.execute(sa.text(statement))
        finally:
            await engine.dispose()
        yield url
    finally:
        await drop_database(ADMIN_DSN, name, roles=[name])


@pytest.fixture
def listen_dsn(messaging_db_url: str) -> str:
    return asyncpg_dsn(messaging_db_url)


@pytest.fixture
async def engine(messaging_db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(messaging_db_url, application_name="messaging-tests", pool_size=5)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)}"))
    yield engine
    await engine.dispose()


@pytest.fixture
async def topology() -> AsyncIterator[Topology]:
    names = BrokerNames(f"m{uuid.uuid4().hex[:8]}.")
    broker = Broker(AMQP_URL, names, client_name="messaging-tests")
    await broker.connect()
    topo = Topology(broker=broker, names=names)
    await topo.declare_core()
    try:
        yield topo
    finally:
        with contextlib.suppress(Exception):
            channel = await broker.channel()
            await delete_topology(channel, names, topo.queues, topo.exchanges)
        await broker.close()
