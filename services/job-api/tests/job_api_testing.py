"""Helpers shared by job-api tests (importable: pytest's `pythonpath` lists this folder)."""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

# One polling helper for every test package (re-exported for job-api's tests).
from messaging_testing import eventually as eventually
from sqlalchemy.ext.asyncio import AsyncEngine

from job_api.config import Settings
from job_api.entrypoints.app import create_app
from job_api.service_layer.unit_of_work import UnitOfWork
from job_api.service_layer.workers import enroll
from servicekit.auth import mint_token
from servicekit.testing import served
from workerlink.identity import WorkerIdentity

ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# The local broker's management API (scripts/ensure-services.sh enables it).
MANAGEMENT_URL = os.environ.get("FTD_TEST_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
JWT_SECRET = "test-jwt-secret-0123456789abcdef"
WORKER_KEY = "test-worker-key-0123456789abcdef"
TABLES = (
    "jobs.job_events",
    "jobs.jobs",
    "jobs.outbox",
    "jobs.inbox",
    "jobs.known_datasets",
    "jobs.idempotency_keys",
    "jobs.namespace_grants",
    "jobs.hf_accounts",
    "jobs.workers",
)


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app (lifespan included: relay, consumer, RPC server, watchdog) behind a client."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@contextlib.asynccontextmanager
async def served_app(
    settings: Settings, *, wrap: Any = None
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The whole app served by a real uvicorn on an ephemeral TCP port (lifespan included), and a
    client that talks to it over TCP. Unlike ASGITransport, the client gets its response as soon
    as uvicorn sends it, so whatever the app does after that (a late commit) is visible to tests.

    `wrap(app)` may wrap the ASGI app (to observe what is sent when)."""
    app = create_app(settings)
    async with (
        served(wrap(app) if wrap is not None else app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        yield client, app


def user_headers(sub: str = "alice", *, admin: bool = False, ttl: int = 3600) -> dict[str, str]:
    token = mint_token(JWT_SECRET, sub, roles=["admin"] if admin else [], ttl_seconds=ttl)
    return {"Authorization": f"Bearer {token}"}


WORKER_HEADERS = {"Authorization": f"Bearer {WORKER_KEY}"}


async def enroll_over_http(
    client: httpx.AsyncClient, name: str, *, owner: str | None = None
) -> dict[str, Any]:
    """POST /api/workers as an operator (shared pool) or as `owner` (their private pool): the
    answer's `data` (worker, token, setup)."""
    headers = user_headers(owner) if owner else user_headers("operator", admin=True)
    response = await client.post(
        "/api/workers",
        json={"name": name, "pool": "private" if owner else "shared"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def job_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "job_type": "embedding",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "training_data_url": "https://data.example.com/train.csv",
        "output_model": "alice/custom-embedding",
        "gpu_provider": "local",
    }
    body.update(overrides)
    return body


async def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run rabbitmqctl on the local node; fail the test if it fails."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"rabbitmqctl {' '.join(args)}: {err.decode()}"
    return out.decode()


async def enroll_worker(
    engine: AsyncEngine, *, name: str = "test-worker", owner: str | None = None
) -> WorkerIdentity:
    """An enrolled worker straight through the service layer (as POST /api/workers does, without
    the broker user): the shared pool, or `owner`'s private pool."""
    async with engine.begin() as conn:
        enrolled = await enroll(
            UnitOfWork(conn),
            name=name,
            shared=owner is None,
            user_id=owner or "operator",
            admin=True,
            now=datetime.now(UTC),
        )
    return WorkerIdentity.of(enrolled.token, enrolled.worker.pool)


async def delete_queues_named(prefix: str, *, vhost: str = "/") -> None:
    """Delete every queue of `vhost` whose name starts with `prefix` (test clean-up)."""
    parts = httpx.URL(MANAGEMENT_URL)
    auth = (parts.username, parts.password)
    base = f"{parts.scheme}://{parts.host}:{parts.port}/api"
    encoded = vhost.replace("/", "%2F")
    async with httpx.AsyncClient(auth=auth, timeout=10, trust_env=False) as http:
        listed = await http.get(f"{base}/queues/{encoded}", params={"columns": "name"})
        listed.raise_for_status()
        for queue in listed.json():
            name = queue["name"]
            if name.startswith(prefix):
                await http.delete(f"{base}/queues/{encoded}/{quote(name, safe='')}")
