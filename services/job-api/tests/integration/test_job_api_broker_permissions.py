"""Invariant 5 on the broker: each enrolled worker has a broker user of its own, made by job-api's
own code (adapters.broker_admin) through the management API, with its pool's permissions. It can
take its pool's jobs, claim them, report, send heartbeats and hear cancellation, and nothing else:
no `basic.get`, purge or consume of another pool's queues, no declarations outside its own names,
no claim key but `job.claim`, no publishing on the public events exchange (no forged
model.completed), no listening to other workers' reports. Revoking it closes its connection.

The shipped deploy/rabbitmq/definitions.json holds the services' users only (no shared worker
user); the test runs in a fresh vhost on the local RabbitMQ, with job-api's topology (and two
private pools) declared in it, and its management API (scripts/ensure-services.sh enables it).
"""

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import aiormq
import pytest
from job_api_testing import MANAGEMENT_URL, eventually, rabbitmqctl

from contracts.credentials import new_token
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
from contracts.routing import SHARED_POOL, BrokerNames, pool_key
from job_api.adapters.broker_admin import BrokerAdmin, broker_user
from job_api.entrypoints.workers import pool_queue_specs, queue_specs
from messaging.broker import Broker
from messaging.topology import declare_queue, declare_topology
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink

pytestmark = pytest.mark.integration

DEFINITIONS = Path(__file__).resolve().parents[4] / "deploy" / "rabbitmq" / "definitions.json"
ALICE, BOB = pool_key("alice"), pool_key("bob")


@pytest.fixture(scope="module")
async def vhost() -> AsyncIterator[str]:
    """A fresh vhost with the shipped service permissions and job-api's topology."""
    name = f"ftd-perm-{uuid.uuid4().hex[:8]}"
    definitions = json.loads(DEFINITIONS.read_text())
    service_users = {u["name"] for u in definitions["users"]}
    assert "worker" not in service_users, "workers get a broker user each, none is shared"
    await rabbitmqctl("add_vhost", name)
    try:
        await rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        admin = Broker(_url(name, "guest", "guest"), BrokerNames(), client_name="perm-admin")
        await admin.connect()
        channel = await admin.channel()
        await declare_topology(channel, admin.names, queue_specs(admin))
        for pool in (ALICE, BOB):
            for spec in pool_queue_specs(admin.names, pool):
                await declare_queue(channel, admin.names, spec)
        await channel.close()
        await admin.close()
        yield name
    finally:
        await rabbitmqctl("delete_vhost", name)


def _url(vhost: str, user: str, password: str) -> str:
    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:5672/" + quote(
        vhost, safe=""
    )


@pytest.fixture(scope="module")
async def provision(vhost: str) -> AsyncIterator[Callable[[str], Awaitable[tuple[str, str]]]]:
    """Makes a worker's broker user as job-api does at enrollment: (url, worker id)."""
    admin = BrokerAdmin(url=MANAGEMENT_URL, vhost=vhost, names=BrokerNames())
    made: list[str] = []

    async def make(pool: str) -> tuple[str, str]:
        worker_id = uuid.uuid4().hex
        token = new_token(worker_id).token
        user = await admin.provision(worker_id=worker_id, pool=pool, token=token)
        made.append(worker_id)
        return _url(vhost, user, token), worker_id

    yield make
    for worker_id in made:
        await admin.remove(worker_id=worker_id)


@pytest.fixture(scope="module")
async def shared(provision: Any) -> AsyncIterator[Broker]:
    url, _ = await provision(SHARED_POOL)
    broker = Broker(url, BrokerNames(), client_name="perm-shared-worker")
    await broker.connect()
    yield broker
    await broker.close()


@pytest.fixture(scope="module")
async def alices(provision: Any) -> AsyncIterator[Broker]:
    url, _ = await provision(ALICE)
    broker = Broker(url, BrokerNames(), client_name="perm-alices-worker")
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


@pytest.mark.parametrize("pool", [SHARED_POOL, ALICE])
async def test_a_worker_can_take_claim_report_beat_and_hear_cancellation(
    provision: Any, pool: str
) -> None:
    url, worker_id = await provision(pool)
    token = new_token(worker_id).token
    link = BrokerLink(
        url,
        BrokerNames(),
        identity=WorkerIdentity.of(token, pool),
        provider=GPUProvider.COLAB,
        job_types=list(JobType),
    )
    await link.connect()  # its own reply queue, the report channel, heartbeats
    await link.resume_offers()  # consumes its pool's work queues
    control = await link.watch_cancel(uuid.uuid4(), 1, lambda _payload: None)
    # Each report is confirmed by the broker: allowed (and routed to job-api's queue).
    await link.publish(_progress())
    await link.publish(JobFailed(**REPORT, error="x", failure_class="infra_error", retryable=True))
    await link.publish(_pushed())
    await link.publish(link.heartbeat())
    assert link.connected
    await control.close()
    await link.close()


async def _ignore(_message: Any) -> None:
    return None


async def _refused(broker: Broker, action: Callable[[Any], Awaitable[object]]) -> None:
    channel = await broker.connection.channel()
    with pytest.raises((aiormq.exceptions.ChannelAccessRefused, aio_pika.exceptions.ChannelClosed)):
        await action(channel)


def _queue_action(name: str, what: str) -> Callable[[Any], Awaitable[object]]:
    async def act(channel: Any) -> object:
        queue = await channel.get_queue(name, ensure=False)
        if what == "get":
            return await queue.get(no_ack=True, fail=False)
        if what == "purge":
            return await queue.purge()
        return await queue.consume(_ignore)

    return act


@pytest.mark.parametrize("what", ["get", "purge", "consume"])
async def test_a_private_worker_cannot_touch_the_shared_pool_or_another_users_pool(
    alices: Broker, what: str
) -> None:
    names = alices.names
    for queue in (
        names.work_queue(JobType.EMBEDDING, GPUProvider.COLAB),
        names.pool_queue(BOB, JobType.EMBEDDING),
    ):
        await _refused(alices, _queue_action(queue, what))


@pytest.mark.parametrize("what", ["get", "purge", "consume"])
async def test_a_shared_worker_cannot_touch_a_private_pool(shared: Broker, what: str) -> None:
    await _refused(shared, _queue_action(shared.names.pool_queue(ALICE, JobType.EMBEDDING), what))


async def test_a_worker_declares_nothing_outside_its_own_names(shared: Broker) -> None:
    async def durable(channel: Any) -> None:
        await channel.declare_queue("mallory.tap", durable=True)

    async def client_named(channel: Any) -> None:
        await channel.declare_queue(f"amq_{uuid.uuid4().hex}", durable=True)

    async def anothers(channel: Any) -> None:
        await channel.declare_queue(f"ftdw.{uuid.uuid4().hex}.x", durable=True)

    async def exchange(channel: Any) -> None:
        await channel.declare_exchange("mallory", aio_pika.ExchangeType.FANOUT, durable=True)

    for action in (durable, client_named, anothers, exchange):
        await _refused(shared, action)


async def test_a_worker_reads_no_service_queue(shared: Broker) -> None:
    names = shared.names
    for queue in (names.service_queue("job-api"), names.rpc_queue("job-api")):
        await _refused(shared, _queue_action(queue, "get"))


async def _publish_to(
    exchange_name: str, payload: EventPayload, key: str | None = None
) -> Callable[[Any], Awaitable[object]]:
    async def publish(channel: Any) -> None:
        exchange = await channel.get_exchange(exchange_name, ensure=False)
        body = Envelope.wrap(payload, source="mallory").model_dump_json().encode()
        await exchange.publish(aio_pika.Message(body=body), key or payload.routing_key())

    return publish


async def test_the_claims_exchange_takes_only_the_claim_key(shared: Broker) -> None:
    """No RPC to anything but a claim."""
    for key in ("job-api.rpc", "job.claim.x", "#", "model.completed"):
        publish = await _publish_to(shared.names.claims_exchange, _progress(), key)
        await _refused(shared, publish)


async def test_a_worker_cannot_write_to_queues_through_the_default_exchange(
    shared: Broker,
) -> None:
    for queue in (
        shared.names.work_queue(JobType.EMBEDDING, GPUProvider.COLAB),
        shared.names.rpc_queue("job-api"),
    ):

        async def publish(channel: Any, queue: str = queue) -> None:
            await channel.default_exchange.publish(aio_pika.Message(body=b"{}"), routing_key=queue)

        await _refused(shared, publish)


async def test_a_worker_cannot_publish_job_created(shared: Broker) -> None:
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
    await _refused(shared, await _publish_to(shared.names.events_exchange, payload))


@pytest.mark.parametrize(
    "payload",
    [_progress(), _pushed(), _model_completed()],
    ids=["job.progress", "model.pushed", "model.completed"],
)
async def test_a_worker_cannot_publish_anything_on_the_events_exchange(
    shared: Broker, payload: EventPayload
) -> None:
    """Subscribers of finetune.events hear job-api alone: no report, no forged model.completed."""
    await _refused(shared, await _publish_to(shared.names.events_exchange, payload))


@pytest.mark.parametrize("key", ["model.completed", "job.created.embedding.colab", "x"])
async def test_the_worker_exchange_takes_only_the_report_keys(shared: Broker, key: str) -> None:
    publish = await _publish_to(shared.names.worker_exchange, _model_completed(), key)
    await _refused(shared, publish)


async def test_a_worker_cannot_listen_to_other_workers_reports(
    shared: Broker, provision: Any
) -> None:
    """Reports carry claim secrets: only job-api's queue may hear them."""
    _, worker_id = await provision(SHARED_POOL)
    own = f"ftdw.{worker_id}.tap"
    for key in ("job.progress", "#", "model.pushed"):

        async def tap(channel: Any, key: str = key) -> None:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(shared.names.worker_exchange, routing_key=key)

        await _refused(shared, tap)
    assert own  # (a queue of its own names would not help: it may not bind the exchange)


async def test_a_worker_may_bind_only_a_cancel_key_for_a_job_id(provision: Any) -> None:
    url, worker_id = await provision(SHARED_POOL)
    broker = Broker(url, BrokerNames(), client_name="perm-binder")
    await broker.connect()
    try:
        for key in ("job.cancel_requested.#", "job.cancel_requested.*", "model.completed"):

            async def tap(channel: Any, key: str = key) -> None:
                queue = await channel.declare_queue(
                    f"ftdw.{worker_id}.tap.{secrets.token_hex(4)}", exclusive=True
                )
                await queue.bind(broker.names.events_exchange, routing_key=key)

            await _refused(broker, tap)
    finally:
        await broker.close()


async def test_revoking_a_worker_closes_its_connection_and_locks_it_out(
    vhost: str, provision: Any
) -> None:
    url, worker_id = await provision(SHARED_POOL)
    connection = await aio_pika.connect(url)
    closed: list[BaseException | None] = []
    connection.close_callbacks.add(lambda _c, exc=None: closed.append(exc))

    await BrokerAdmin(url=MANAGEMENT_URL, vhost=vhost, names=BrokerNames()).remove(
        worker_id=worker_id
    )

    async def was_closed() -> bool:
        return bool(closed)

    await eventually(was_closed, timeout=10)
    assert "is deleted" in str(closed[0])
    with pytest.raises((aiormq.exceptions.ProbableAuthenticationError, ConnectionError)):
        await aio_pika.connect(url)
    assert broker_user(worker_id) in str(closed[0])
