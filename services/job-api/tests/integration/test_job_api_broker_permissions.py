"""Invariant 5 on the shipped broker definitions: a worker credential can take jobs, claim them,
report to job-api (on the worker exchange only) and hear cancellation, and nothing else: it cannot
publish anything on the public events exchange (no forged model.completed), nor listen to other
workers' reports.

The worker's permissions and topic permissions are read from deploy/rabbitmq/definitions.json and
applied to a fresh vhost and user on the local RabbitMQ, with job-api's topology declared in it.
"""

import json
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import aiormq
import pytest
from job_api_testing import rabbitmqctl

from contracts.enums import GPUProvider, JobType, ModelStore
from contracts.events import (
    Envelope,
    EventPayload,
    JobCreated,
    JobFailed,
    JobProgress,
    ModelCompleted,
    ModelPushed,
)
from contracts.routing import BrokerNames
from job_api.entrypoints.workers import queue_specs
from messaging.broker import Broker
from messaging.topology import declare_topology
from messaging.worker import WorkerClient

pytestmark = pytest.mark.integration

DEFINITIONS = Path(__file__).resolve().parents[4] / "deploy" / "rabbitmq" / "definitions.json"


def _worker_grants() -> tuple[dict[str, str], list[dict[str, str]]]:
    definitions = json.loads(DEFINITIONS.read_text())
    [perms] = [p for p in definitions["permissions"] if p["user"] == "worker"]
    topics = [p for p in definitions["topic_permissions"] if p["user"] == "worker"]
    return perms, topics


@pytest.fixture(scope="module")
async def worker_vhost() -> AsyncIterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    vhost, user, password = f"ftd-perm-{tag}", f"ftd-worker-{tag}", secrets.token_hex(16)
    perms, topics = _worker_grants()
    await rabbitmqctl("add_vhost", vhost)
    try:
        await rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        await rabbitmqctl("add_user", user, password)
        await rabbitmqctl(
            "set_permissions", "-p", vhost, user, perms["configure"], perms["write"], perms["read"]
        )
        for topic in topics:
            await rabbitmqctl(
                "set_topic_permissions",
                "-p",
                vhost,
                user,
                topic["exchange"],
                topic["write"],
                topic["read"],
            )
        base = "amqp://{}:{}@127.0.0.1:5672/" + quote(vhost, safe="")
        admin = Broker(base.format("guest", "guest"), BrokerNames(), client_name="perm-admin")
        await admin.connect()
        channel = await admin.channel()
        await declare_topology(channel, admin.names, queue_specs(admin))
        await channel.close()
        await admin.close()
        yield {"url": base.format(quote(user, safe=""), quote(password, safe="")), "vhost": vhost}
    finally:
        await rabbitmqctl("delete_vhost", vhost)
        await rabbitmqctl("delete_user", user)


@pytest.fixture
async def worker_broker(worker_vhost: dict[str, str]) -> AsyncIterator[Broker]:
    broker = Broker(worker_vhost["url"], BrokerNames(), client_name="perm-worker")
    await broker.connect()
    yield broker
    await broker.close()


REPORT = {"job_id": uuid.uuid4(), "attempt": 1, "worker_id": "w", "claim_secret": "s"}


def _progress() -> JobProgress:
    return JobProgress(**REPORT, progress=5)


def _pushed() -> ModelPushed:
    return ModelPushed(
        **REPORT, repo_id="a/b", revision="r", store=ModelStore.HUB, uri="hf://a/b@r"
    )


def _model_completed() -> ModelCompleted:
    return ModelCompleted(
        job_id=uuid.uuid4(),
        user_id="mallory",
        attempt=1,
        job_type=JobType.EMBEDDING,
        base_model="x",
        output_model="a/b",
        repo_id="a/b",
        revision="r",
        store=ModelStore.HUB,
        uri="hf://a/b@r",
        completed_at="2026-01-01T00:00:00Z",
    )


async def test_the_worker_can_take_claim_report_and_hear_cancellation(
    worker_broker: Broker,
) -> None:
    worker = WorkerClient(
        worker_broker, worker_id="w", provider=GPUProvider.COLAB, job_types=list(JobType)
    )
    await worker.start()  # consumes every work queue of its provider; exclusive reply queue
    control = await worker.on_cancel(uuid.uuid4(), 1, lambda _payload: None)
    # Each report is confirmed by the broker: allowed (and routed to job-api's queue).
    await worker.publish(_progress())
    await worker.publish(
        JobFailed(**REPORT, error="x", failure_class="infra_error", retryable=True)
    )
    await worker.publish(_pushed())
    await control.close()
    await worker.close()


async def _ignore(_message: Any) -> None:
    return None


async def _refused(worker_broker: Broker, action: Any) -> None:
    channel = await worker_broker.connection.channel()
    with pytest.raises((aiormq.exceptions.ChannelAccessRefused, aio_pika.exceptions.ChannelClosed)):
        await action(channel)


async def test_the_worker_cannot_publish_job_created(worker_broker: Broker) -> None:
    payload = JobCreated(
        job_id=uuid.uuid4(),
        user_id="mallory",
        job_type=JobType.EMBEDDING,
        gpu_provider=GPUProvider.COLAB,
        base_model="x",
        output_model="a/b",
        hyperparameters={},
        created_at="2026-01-01T00:00:00Z",
    )

    async def publish(channel: Any) -> None:
        exchange = await channel.get_exchange(worker_broker.names.events_exchange, ensure=False)
        body = Envelope.wrap(payload, source="mallory").model_dump_json().encode()
        await exchange.publish(aio_pika.Message(body=body), payload.routing_key())

    await _refused(worker_broker, publish)


async def test_the_worker_cannot_write_to_queues_through_the_default_exchange(
    worker_broker: Broker,
) -> None:
    async def publish(channel: Any) -> None:
        queue = worker_broker.names.work_queue(JobType.EMBEDDING, GPUProvider.COLAB)
        await channel.default_exchange.publish(aio_pika.Message(body=b"{}"), routing_key=queue)

    await _refused(worker_broker, publish)


async def test_the_worker_cannot_declare_queues_or_read_service_queues(
    worker_broker: Broker,
) -> None:
    async def declare(channel: Any) -> None:
        await channel.declare_queue("mallory.tap", durable=True)

    async def consume_service_queue(channel: Any) -> None:
        queue = await channel.get_queue(worker_broker.names.service_queue("job-api"), ensure=False)
        await queue.consume(_ignore)

    await _refused(worker_broker, declare)
    await _refused(worker_broker, consume_service_queue)


async def test_the_worker_cannot_listen_to_other_events(worker_broker: Broker) -> None:
    async def tap(channel: Any) -> None:
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(worker_broker.names.events_exchange, routing_key="model.completed")

    await _refused(worker_broker, tap)


async def _publish_to(
    worker_broker: Broker, exchange_name: str, payload: EventPayload, key: str | None = None
) -> Any:
    async def publish(channel: Any) -> None:
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        body = Envelope.wrap(payload, source="mallory").model_dump_json().encode()
        await exchange.publish(aio_pika.Message(body=body), key or payload.routing_key())

    return publish


@pytest.mark.parametrize(
    "payload",
    [_progress(), _pushed(), _model_completed()],
    ids=["job.progress", "model.pushed", "model.completed"],
)
async def test_the_worker_cannot_publish_anything_on_the_events_exchange(
    worker_broker: Broker, payload: EventPayload
) -> None:
    """Subscribers of finetune.events hear job-api alone: no report, no forged model.completed."""
    names = worker_broker.names
    await _refused(worker_broker, await _publish_to(worker_broker, names.events_exchange, payload))


@pytest.mark.parametrize("key", ["model.completed", "job.created.embedding.colab", "x"])
async def test_the_worker_exchange_takes_only_the_report_keys(
    worker_broker: Broker, key: str
) -> None:
    names = worker_broker.names
    publish = await _publish_to(worker_broker, names.worker_exchange, _model_completed(), key)
    await _refused(worker_broker, publish)


async def test_the_worker_cannot_listen_to_other_workers_reports(worker_broker: Broker) -> None:
    """Reports carry claim secrets: only job-api's queue may hear them."""
    for key in ("job.progress", "#", "model.pushed"):

        async def tap(channel: Any, key: str = key) -> None:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(worker_broker.names.worker_exchange, routing_key=key)

        await _refused(worker_broker, tap)


async def test_the_worker_may_bind_only_a_cancel_key_for_a_job_id(worker_broker: Broker) -> None:
    for key in ("job.cancel_requested.#", "job.cancel_requested.*", "model.completed"):

        async def tap(channel: Any, key: str = key) -> None:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(worker_broker.names.events_exchange, routing_key=key)

        await _refused(worker_broker, tap)
