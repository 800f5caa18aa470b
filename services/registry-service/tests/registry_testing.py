"""Helpers shared by registry-service tests (importable: pytest's `pythonpath` lists this folder);
what every service's tests share comes from servicekit.testing."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from contracts.enums import JobType, ModelStore
from contracts.events import Envelope, ModelCompleted
from contracts.routing import BrokerNames
from messaging.broker import Broker
from registry_service.config import Settings
from registry_service.entrypoints.app import create_app
from servicekit.testing import ADMIN_DSN as ADMIN_DSN
from servicekit.testing import AMQP_URL, in_process
from servicekit.testing import JWT_SECRET as JWT_SECRET
from servicekit.testing import eventually as eventually
from servicekit.testing import served as served_at
from servicekit.testing import user_headers as user_headers

TABLES = (
    "registry.models",
    "registry.model_names",
    "registry.registered_jobs",
    "registry.outbox",
    "registry.inbox",
)
MODELS = "/api/models"


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
    async with in_process(create_app(settings)) as client:
        yield client


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app under a real uvicorn on 127.0.0.1 (an OS-chosen port), and a client for it."""
    async with (
        served_at(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        yield client
