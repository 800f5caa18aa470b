"""With its database unreachable, a service built by servicekit.app answers 503
`service_unavailable` with Retry-After: not a 500 with a traceback, not a reset connection.
Through a real uvicorn over TCP, for reads (GET) and writes (POST): a database on a closed port,
and one dropped while the service runs (its connections terminated, new ones refused)."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from servicekit.app import build_app
from servicekit.config import PlatformSettings
from servicekit.db import drop_database, sqlalchemy_dsn
from servicekit.deps import READING, WRITING
from servicekit.errors import RETRY_AFTER_SECONDS
from servicekit.service import Platform, Service
from servicekit.testing import (
    ADMIN_DSN,
    AMQP_URL,
    JWT_SECRET,
    broker_namespace,
    free_socket,
    served,
    service_database,
)
from servicekit.uow import Units

pytestmark = pytest.mark.integration

SCHEMA = "outage"


class Notes:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def count(self) -> int:
        return int(
            (await self.conn.execute(sa.text("SELECT count(*) FROM outage.notes"))).scalar_one()
        )

    async def add(self) -> None:
        await self.conn.execute(sa.text("INSERT INTO outage.notes DEFAULT VALUES"))


router = APIRouter()


@router.get("/notes")
async def count_notes(notes: Annotated[Notes, READING]) -> dict[str, int]:
    return {"count": await notes.count()}


@router.post("/notes", status_code=201)
async def add_note(notes: Annotated[Notes, WRITING]) -> dict[str, bool]:
    await notes.add()
    return {"added": True}


@dataclass
class State:
    units: Units[Notes]


async def _start(platform: Platform) -> State:
    return State(units=Units(platform.db, Notes))


def _migrate(url: str) -> None:
    async def create() -> None:
        engine = create_async_engine(sqlalchemy_dsn(url))
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("CREATE TABLE outage.notes (id serial PRIMARY KEY)"))
        finally:
            await engine.dispose()

    asyncio.run(create())


@contextlib.asynccontextmanager
async def _service(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with broker_namespace(lambda _broker: ()) as prefix:
        settings = PlatformSettings(
            environment="test",
            database_url=database_url,
            db_password=SecretStr(uuid.uuid4().hex),
            amqp_url=SecretStr(AMQP_URL),
            broker_prefix=prefix,
            jwt_secret=SecretStr(JWT_SECRET),
            db_pool_size=2,
            access_log=False,
        )
        service: Service[State] = Service(
            name="sk-outage",
            description="A service whose database goes away.",
            routers=[router],
            start=_start,
            max_body_bytes=1024,
        )
        async with (
            served(build_app(service, settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            yield client


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert response.headers["x-request-id"]
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert "database" in error["message"]
    assert "Traceback" not in response.text


async def _assert_down(client: httpx.AsyncClient) -> None:
    # Each call on the same keep-alive connection: an answer, never a reset.
    for _ in range(2):
        _assert_unavailable(await client.get("/notes"))
        _assert_unavailable(await client.post("/notes"))
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["data"] == {"database": False, "broker": True}


async def test_a_database_on_a_closed_port_is_503_with_retry_after() -> None:
    sock = free_socket()  # bound, never listening: connections to it are refused
    port = sock.getsockname()[1]
    try:
        async with _service(f"postgresql://nobody:secret@127.0.0.1:{port}/none") as client:
            await _assert_down(client)
            # The service itself is alive: liveness says so.
            assert (await client.get("/healthz")).status_code == 200
    finally:
        sock.close()


async def test_a_database_dropped_while_serving_is_503_with_retry_after() -> None:
    async with (
        service_database(schema=SCHEMA, migrate=_migrate) as url,
        _service(url) as client,
    ):
        assert (await client.post("/notes")).status_code == 201
        assert (await client.get("/notes")).json() == {"count": 1}
        assert (await client.get("/readyz")).status_code == 200

        # Terminates the service's connections, then drops the database.
        await drop_database(ADMIN_DSN, urlsplit(url).path.lstrip("/"))

        await _assert_down(client)


async def test_a_bug_is_still_a_500_without_details() -> None:
    """The outage mapping does not swallow real errors: a failing statement is a 500."""
    async with (
        service_database(schema=SCHEMA, migrate=_migrate) as url,
        _service(url) as client,
    ):
        assert (await client.get("/notes")).status_code == 200
        engine = create_async_engine(sqlalchemy_dsn(url))
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("DROP TABLE outage.notes"))
        finally:
            await engine.dispose()
        response = await client.get("/notes")
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"
        assert "notes" not in response.text
