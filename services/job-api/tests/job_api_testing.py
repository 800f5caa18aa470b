"""Helpers shared by job-api tests (importable: pytest's `pythonpath` lists this folder)."""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

# One polling helper for every test package (re-exported for job-api's tests).
from messaging_testing import eventually as eventually

from job_api.config import Settings
from job_api.entrypoints.app import create_app
from servicekit.auth import mint_token

ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
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
    config = uvicorn.Config(
        wrap(app) if wrap is not None else app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client, app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def user_headers(sub: str = "alice", *, admin: bool = False, ttl: int = 3600) -> dict[str, str]:
    token = mint_token(JWT_SECRET, sub, roles=["admin"] if admin else [], ttl_seconds=ttl)
    return {"Authorization": f"Bearer {token}"}


WORKER_HEADERS = {"Authorization": f"Bearer {WORKER_KEY}"}


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
