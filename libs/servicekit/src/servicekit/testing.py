"""What every service's tests share against the real PostgreSQL and RabbitMQ: helpers and fixture
builders, brought into a service's conftest.py by name (so each test package gets fixtures of its
own, with the names its tests use):

    registry_database_url = database_fixture("registry_database_url", schema="registry",
                                             migrate=migrate)
    registry_db = engine_fixture("registry_db", database="registry_database_url", tables=TABLES)
    registry_prefix = broker_prefix_fixture("registry_prefix", queues=queue_specs)

- one database and login role per test session, migrated once (`database_fixture`), emptied
  before each test (`engine_fixture`), dropped at the end;
- one broker namespace per test: a unique prefix for every exchange and queue, whose topology is
  deleted afterwards (`broker_prefix_fixture`);
- the app served by a real uvicorn over TCP, lifespan included (`served`), or called in process
  (`in_process`);
- `eventually`: polling with a deadline, never a bare sleep;
- `user_headers`: a user token signed with the tests' JWT secret.
"""

import asyncio
import contextlib
import inspect
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.routing import BrokerNames
from messaging.broker import Broker
from messaging.topology import QueueSpec, delete_topology
from servicekit.auth import mint_token
from servicekit.db import bootstrap_service_database, drop_database, make_engine, with_credentials

ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
JWT_SECRET = "test-jwt-secret-0123456789abcdef"  # noqa: S105 - signs test tokens only

Migrate = Callable[[str], None]
QueueSpecs = Callable[[Broker], Sequence[QueueSpec]]


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 15, interval: float = 0.02
) -> Any:
    """Poll `check` until it returns something truthy (returned); fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last result: {result!r})")
        await asyncio.sleep(interval)


def user_headers(
    sub: str = "alice", *, admin: bool = False, ttl: int = 3600, secret: str = JWT_SECRET
) -> dict[str, str]:
    token = mint_token(secret, sub, roles=["admin"] if admin else [], ttl_seconds=ttl)
    return {"Authorization": f"Bearer {token}"}


def free_socket() -> socket.socket:
    """A TCP socket bound to an ephemeral port of 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """`app` (any ASGI app) behind a real uvicorn on an ephemeral port, lifespan included; yields
    its base URL. A client gets each response as soon as uvicorn sends it, so what the app does
    after that (a late commit) is visible to a test, unlike with an in-process transport."""
    sock = free_socket()
    port = sock.getsockname()[1]
    # Keep-alive longer than a client's (httpx: 5 s), so the client drops an idle connection
    # first and never sends on one the server is just closing (a ReadError).
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=60,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await task
        sock.close()


@contextlib.asynccontextmanager
async def in_process(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """`app` with its lifespan run, behind a client that calls it in this process (no socket)."""
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def via_port(dsn: str, port: int) -> str:
    """`dsn` pointed at 127.0.0.1:`port` (a TcpProxy in front of the server), credentials kept."""
    parts = urlsplit(dsn)
    credentials, _, _ = parts.netloc.rpartition("@")
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def service_database(*, schema: str, migrate: Migrate) -> AsyncIterator[str]:
    """A database and login role of their own owning `schema`, migrated to head; yields the
    role's URL and drops both afterwards."""
    name = f"ftd_test_{schema}_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    await bootstrap_service_database(
        ADMIN_DSN, database=name, role=name, password=password, schema=schema
    )
    url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
    try:
        await asyncio.to_thread(migrate, url)
        yield url
    finally:
        await drop_database(ADMIN_DSN, name, roles=[name])


@contextlib.asynccontextmanager
async def emptied(url: str, tables: Sequence[str]) -> AsyncIterator[AsyncEngine]:
    """An engine on `url` after every row of `tables` is gone."""
    engine = make_engine(url, application_name="service-tests", pool_size=2)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        yield engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def broker_namespace(queues: QueueSpecs) -> AsyncIterator[str]:
    """A unique name prefix for the broker; afterwards the core topology under it and the
    `queues` a service declares there are deleted."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    try:
        yield prefix
    finally:
        broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="test-teardown")
        await broker.connect()
        try:
            specs = queues(broker)
            channel = await broker.channel()
            with contextlib.suppress(Exception):
                await delete_topology(
                    channel,
                    broker.names,
                    [s.name for s in specs],
                    [s.exchange for s in specs if s.exchange],
                )
        finally:
            await broker.close()


def _fixture(name: str, scope: str, depends_on: Sequence[str], body: Callable[..., Any]) -> Any:
    """`body` as the fixture `name`, asking pytest for the fixtures `depends_on` (passed to it by
    keyword): the names are the service's, so they are set on the signature."""
    body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(dep, inspect.Parameter.KEYWORD_ONLY) for dep in depends_on]
    )
    return pytest.fixture(scope=scope, name=name)(body)  # type: ignore[call-overload]


def database_fixture(name: str, *, schema: str, migrate: Migrate) -> Any:
    """A session fixture `name`: the URL of the session's own database (`service_database`)."""

    async def database() -> AsyncIterator[str]:
        async with service_database(schema=schema, migrate=migrate) as url:
            yield url

    return _fixture(name, "session", (), database)


def engine_fixture(name: str, *, database: str, tables: Sequence[str]) -> Any:
    """A fixture `name`: an engine on the database fixture `database`, its `tables` emptied
    first."""

    async def engine(**deps: str) -> AsyncIterator[AsyncEngine]:
        async with emptied(deps[database], tables) as engine:
            yield engine

    return _fixture(name, "function", (database,), engine)


def broker_prefix_fixture(name: str, *, queues: QueueSpecs) -> Any:
    """A fixture `name`: a broker namespace of the test's own (`broker_namespace`)."""

    async def prefix() -> AsyncIterator[str]:
        async with broker_namespace(queues) as prefix:
            yield prefix

    return _fixture(name, "function", (), prefix)
