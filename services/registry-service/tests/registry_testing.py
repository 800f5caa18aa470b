"""Helpers shared by registry-service tests (importable: pytest's `pythonpath` lists this folder)."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager

# One polling helper for every test package.
from messaging_testing import eventually as eventually

from contracts.enums import JobType, ModelStore
from contracts.events import Envelope, ModelCompleted
from contracts.routing import BrokerNames
from messaging.broker import Broker
from registry_service.config import Settings
from registry_service.entrypoints.app import create_app
from servicekit.auth import mint_token

ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
JWT_SECRET = "test-jwt-secret-0123456789abcdef"
TABLES = (
    "registry.models",
    "registry.model_names",
    "registry.registered_jobs",
    "registry.outbox",
    "registry.inbox",
)
MODELS = "/api/models"


def user_headers(sub: str = "alice", *, admin: bool = False) -> dict[str, str]:
    token = mint_token(JWT_SECRET, sub, roles=["admin"] if admin else [])
    return {"Authorization": f"Bearer {token}"}


def completed(
    *,
    user_id: str = "alice",
    output_model: str = "alice/support-embed",
    job_type: JobType = JobType.EMBEDDING,
    job_id: uuid.UUID | None = None,
    store: ModelStore = ModelStore.HUB,
    uri: str | None = None,
    revision: str | None = None,
    completed_at: datetime | None = None,
    **extra: Any,
) -> ModelCompleted:
    revision = revision or uuid.uuid4().hex
    values: dict[str, Any] = {
        "job_id": job_id or uuid.uuid4(),
        "user_id": user_id,
        "attempt": 1,
        "job_type": job_type,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "output_model": output_model,
        "repo_id": output_model,
        "revision": revision,
        "store": store,
        "uri": uri or f"hf://{output_model}@{revision}",
        "metrics": {"eval_loss": 0.12},
        "baseline_metrics": {"eval_loss": 0.3},
        "data_stats": {"rows": 120},
        "hyperparameters": {"epochs": 1},
        "completed_at": completed_at or datetime.now(UTC),
    }
    values.update(extra)
    return ModelCompleted(**values)


async def publish(
    broker_prefix: str, *events: ModelCompleted, event_id: uuid.UUID | None = None
) -> list[Envelope]:
    """Publish model.completed events on the events exchange, as job-api's relay does."""
    broker = Broker(AMQP_URL, BrokerNames(broker_prefix), client_name="registry-test-publisher")
    await broker.connect()
    envelopes = []
    try:
        for event in events:
            envelope = Envelope.wrap(event, source="job-api", event_id=event_id)
            await broker.publish(envelope, event.routing_key())
            envelopes.append(envelope)
    finally:
        await broker.close()
    return envelopes


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The whole app (lifespan included: relay and consumer) behind an in-process client."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app under a real uvicorn on 127.0.0.1 (an OS-chosen port), and a client for it."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        assert not task.done(), "uvicorn stopped during start-up"
        return server.started

    try:
        await eventually(started, timeout=30)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
