"""Helpers shared by webhook-service tests (importable: pytest's `pythonpath` lists this folder):
the events job-api and the registry publish, and a receiver listening on 127.0.0.1 that records
what it gets and answers with the statuses a test scripts."""

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contracts.enums import JobStatus, JobType
from contracts.events import Envelope, EventPayload, JobStatusChanged, ModelDeployed
from contracts.routing import BrokerNames
from messaging.broker import Broker
from servicekit.testing import AMQP_URL, eventually, served
from webhook_service.config import Settings
from webhook_service.entrypoints.app import create_app

TABLES = ("webhooks.webhooks", "webhooks.deliveries", "webhooks.attempts", "webhooks.inbox")
WEBHOOKS = "/api/webhooks"


def job_ended(
    user: str, status: JobStatus = JobStatus.COMPLETED, **extra: object
) -> JobStatusChanged:
    values: dict[str, object] = {
        "job_id": uuid.uuid4(),
        "user_id": user,
        "from_status": JobStatus.RUNNING,
        "to_status": status,
        "attempt": 1,
    }
    values.update(extra)
    return JobStatusChanged.model_validate(values)


def model_deployed(user: str, *, deployed: bool = True) -> ModelDeployed:
    return ModelDeployed(
        model_id=uuid.uuid4(),
        job_id=uuid.uuid4(),
        user_id=user,
        repo_id=f"{user}/support-embed",
        revision="abc123",
        job_type=JobType.EMBEDDING,
        deployed=deployed,
        deployed_at=datetime.now(UTC),
    )


async def publish(prefix: str, *events: EventPayload, source: str = "job-api") -> list[Envelope]:
    """Publish on the events exchange, as the producers' relays do."""
    broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="webhook-test-publisher")
    await broker.connect()
    envelopes = []
    try:
        for event in events:
            envelope = Envelope.wrap(event, source=source)
            await broker.publish(envelope, event.routing_key())
            envelopes.append(envelope)
    finally:
        await broker.close()
    return envelopes


@dataclass(frozen=True)
class Got:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every request; answers each with the next scripted (status, headers), then 200."""

    url: str = ""
    got: list[Got] = field(default_factory=list)
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)

    def answer(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.script.extend((s, headers or {}) for s in statuses)

    def at(self, path: str) -> list[Got]:
        return [g for g in self.got if g.path == path]

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.got.append(Got(request.url.path, dict(request.headers), body))
        status, headers = self.script.popleft() if self.script else (200, {})
        return Response(status_code=status, headers=headers)


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """A Receiver behind a real uvicorn on 127.0.0.1; its `url` is the base URL."""
    rec = Receiver()
    app = Starlette(routes=[Route("/{path:path}", rec.endpoint, methods=["POST", "GET"])])
    async with served(app) as url:
        rec.url = url
        yield rec


@contextlib.asynccontextmanager
async def webhook_app(settings: Settings, **kwargs: object) -> AsyncIterator[httpx.AsyncClient]:
    """The app under a real uvicorn on 127.0.0.1, lifespan included, and a client for it."""
    async with (
        served(create_app(settings, **kwargs)) as url,  # type: ignore[arg-type]
        httpx.AsyncClient(base_url=url, timeout=20) as client,
    ):
        yield client


async def settle(seconds: float = 0.3) -> None:
    """Lets events that should NOT lead anywhere have their chance (after a positive check)."""
    await asyncio.sleep(seconds)


async def until(condition: Callable[[], bool], *, timeout: float = 15) -> None:
    """Wait until `condition()` holds (servicekit's `eventually`, for a plain predicate)."""

    async def check() -> bool:
        return condition()

    await eventually(check, timeout=timeout)
