"""A worker's broker identity takes its pool's jobs and sends its own reports, nothing else (the
review's least-privilege findings), on the running stack.

Workers are enrolled through the gateway (POST /api/workers) and dial AMQP as the broker user
job-api made for each (`ftdw-<id>`, the token as password), in the stack's own names (a prefix).
The review, as one shared worker identity, could `basic.get`, purge or consume any pool's
queue, declare durable queues and exchanges, publish any routing key to the claims exchange,
publish on finetune.events (a forged `model.completed`) and bind finetune.worker to hear other
workers' reports and claim secrets. Each is refused now with ACCESS_REFUSED; what a worker needs
(its pool's queues, its own queues, a claim) still works.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from security_stack import SecurityStack
from security_workers import Enrolled, enroll, linked

from contracts.enums import GPUProvider, JobType, ModelStore
from contracts.events import Envelope, EventPayload, JobCreated, JobProgress, ModelCompleted
from contracts.routing import pool_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

Action = Callable[[AbstractChannel], Awaitable[object]]


@pytest.fixture(scope="module")
async def workers(stack: SecurityStack) -> dict[str, Enrolled]:
    return {
        "shared": await enroll(stack, "least-privilege-shared"),
        "alice": await enroll(stack, "least-privilege-alice", owner="lp-alice"),
        # Enrolling bob's worker declares his pool's queues: there is something to steal.
        "bob": await enroll(stack, "least-privilege-bob", owner="lp-bob"),
    }


@pytest.fixture
async def shared(workers: dict[str, Enrolled]) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(workers["shared"].amqp_url)
    yield connection
    await connection.close()


@pytest.fixture
async def alices(workers: dict[str, Enrolled]) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(workers["alice"].amqp_url)
    yield connection
    await connection.close()


async def _ignore(_message: Any) -> None:
    return None


async def _refused(connection: AbstractRobustConnection, action: Action, what: str) -> None:
    """`action` on a fresh channel (publisher confirms on) is refused by the broker's
    permissions: ACCESS_REFUSED, not a missing queue or any other error."""
    channel = await connection.channel(publisher_confirms=True)
    with pytest.raises(
        (aiormq.exceptions.ChannelAccessRefused, aio_pika.exceptions.ChannelClosed)
    ) as refused:
        await action(channel)
    assert "ACCESS_REFUSED" in repr(refused.value), (what, refused.value)


def _on_queue(name: str, what: str) -> Action:
    async def act(channel: AbstractChannel) -> object:
        queue = await channel.get_queue(name, ensure=False)
        if what == "get":
            return await queue.get(no_ack=True, fail=False)
        if what == "purge":
            return await queue.purge()
        return await queue.consume(_ignore)

    return act


def _publish(exchange: str, payload: EventPayload, key: str | None = None) -> Action:
    async def act(channel: AbstractChannel) -> None:
        target = await channel.get_exchange(exchange, ensure=False)
        body = Envelope.wrap(payload, source="mallory").model_dump_json().encode()
        await target.publish(aio_pika.Message(body=body), key or payload.routing_key())

    return act


def _forged_completion() -> ModelCompleted:
    return ModelCompleted(
        job_id=uuid.uuid4(),
        user_id="victim",
        attempt=1,
        job_type=JobType.EMBEDDING,
        base_model="x",
        output_model="victim/model",
        repo_id="mallory/backdoored",
        revision="evil-rev",
        store=ModelStore.HUB,
        uri="hf://mallory/backdoored@evil-rev",
        completed_at="2026-01-01T00:00:00Z",
    )


def _progress() -> JobProgress:
    return JobProgress(
        job_id=uuid.uuid4(), attempt=1, worker_id="mallory", claim_secret="guess", progress=99
    )


async def test_what_a_worker_needs_is_allowed(
    workers: dict[str, Enrolled], shared: AbstractRobustConnection
) -> None:
    """The control: its own queues, its pool's queues and a claim all work for the same users."""
    worker = workers["shared"]
    channel = await shared.channel()
    own = await channel.declare_queue(
        f"{worker.names.worker_queue_prefix(worker.hex)}probe", exclusive=True
    )
    await own.bind(worker.names.events_exchange, routing_key=f"job.cancel_requested.{uuid.uuid4()}")
    # A shared work queue no worker of the stack serves (its messages are nobody's).
    idle = await channel.get_queue(
        worker.names.work_queue(JobType.LLM_LORA, GPUProvider.RUNPOD), ensure=False
    )
    tag = await idle.consume(_ignore)
    await idle.cancel(tag)
    await channel.close()
    async with linked(worker) as link:
        reply = await link.request_claim(uuid.uuid4())
        assert not reply.granted
        assert reply.refusal is not None, "job-api answered the claim"
    alice = workers["alice"]
    async with await aio_pika.connect(alice.amqp_url) as connection:
        channel = await connection.channel()
        mine = await channel.get_queue(
            alice.names.pool_queue(pool_key("lp-alice"), JobType.EMBEDDING), ensure=False
        )
        assert await mine.get(no_ack=False, fail=False) is None


@pytest.mark.parametrize("what", ["get", "purge", "consume"])
async def test_a_private_worker_cannot_touch_the_shared_pool_or_another_users_pool(
    workers: dict[str, Enrolled], alices: AbstractRobustConnection, what: str
) -> None:
    names = workers["alice"].names
    for queue in (
        # The stack's CPU worker's offers.
        names.work_queue(JobType.EMBEDDING, GPUProvider.LOCAL),
        names.pool_queue(pool_key("lp-bob"), JobType.EMBEDDING),
    ):
        await _refused(alices, _on_queue(queue, what), f"{what} {queue}")


@pytest.mark.parametrize("what", ["get", "purge", "consume"])
async def test_a_shared_worker_cannot_touch_a_private_pool_or_a_services_queue(
    workers: dict[str, Enrolled], shared: AbstractRobustConnection, what: str
) -> None:
    names = workers["shared"].names
    for queue in (
        names.pool_queue(pool_key("lp-alice"), JobType.EMBEDDING),
        names.service_queue("job-api"),
        names.service_queue("registry-service"),
        names.rpc_queue("job-api"),
    ):
        await _refused(shared, _on_queue(queue, what), f"{what} {queue}")


async def test_a_worker_declares_nothing_durable_outside_its_own_names(
    workers: dict[str, Enrolled], shared: AbstractRobustConnection
) -> None:
    worker = workers["shared"]
    names = worker.names
    other = uuid.uuid4().hex

    async def durable_queue(channel: AbstractChannel) -> None:
        await channel.declare_queue(f"{names.prefix}mallory.tap", durable=True)

    async def another_workers_queue(channel: AbstractChannel) -> None:
        await channel.declare_queue(f"{names.worker_queue_prefix(other)}tap", durable=True)

    async def a_work_queue(channel: AbstractChannel) -> None:
        await channel.declare_queue(f"{names.prefix}finetune.work.embedding.mallory", durable=True)

    async def an_exchange(channel: AbstractChannel) -> None:
        await channel.declare_exchange(
            f"{names.prefix}mallory", aio_pika.ExchangeType.FANOUT, durable=True
        )

    async def the_events_exchange(channel: AbstractChannel) -> None:
        await channel.declare_exchange(
            names.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )

    for action in (
        durable_queue,
        another_workers_queue,
        a_work_queue,
        an_exchange,
        the_events_exchange,
    ):
        await _refused(shared, action, action.__name__)


async def test_the_claims_exchange_takes_only_the_claim_key(
    workers: dict[str, Enrolled], shared: AbstractRobustConnection
) -> None:
    names = workers["shared"].names
    for key in ("job-api.rpc", "job.claim.x", "job.claim.#", "#", "model.completed"):
        await _refused(shared, _publish(names.claims_exchange, _progress(), key), key)


@pytest.mark.parametrize(
    "payload",
    [_forged_completion(), _progress()],
    ids=["model.completed", "job.progress"],
)
async def test_a_worker_publishes_nothing_on_the_events_exchange(
    workers: dict[str, Enrolled], shared: AbstractRobustConnection, payload: EventPayload
) -> None:
    """finetune.events is what the registry and every subscriber believe: only job-api's."""
    names = workers["shared"].names
    await _refused(shared, _publish(names.events_exchange, payload), payload.routing_key())
    created = JobCreated(
        job_id=uuid.uuid4(),
        user_id="mallory",
        job_type=JobType.EMBEDDING,
        gpu_provider=GPUProvider.LOCAL,
        base_model="x",
        output_model="mallory/x",
        hyperparameters={},
        created_at="2026-01-01T00:00:00Z",
    )
    await _refused(shared, _publish(names.events_exchange, created), "job.created")


async def test_a_worker_cannot_bind_the_worker_exchange_to_hear_reports(
    workers: dict[str, Enrolled], shared: AbstractRobustConnection
) -> None:
    """Reports carry claim secrets: only job-api's queue may hear them."""
    worker = workers["shared"]
    for key in ("#", "job.progress", "model.pushed", "worker.heartbeat"):

        async def tap(channel: AbstractChannel, key: str = key) -> None:
            queue = await channel.declare_queue(
                f"{worker.names.worker_queue_prefix(worker.hex)}tap.{uuid.uuid4().hex[:8]}",
                exclusive=True,
            )
            await queue.bind(worker.names.worker_exchange, routing_key=key)

        await _refused(shared, tap, f"bind finetune.worker {key}")


async def test_a_worker_cannot_listen_to_every_cancel_notice(
    workers: dict[str, Enrolled], shared: AbstractRobustConnection
) -> None:
    worker = workers["shared"]
    for key in ("#", "job.cancel_requested.#", "job.cancel_requested.*", "model.completed"):

        async def tap(channel: AbstractChannel, key: str = key) -> None:
            queue = await channel.declare_queue(
                f"{worker.names.worker_queue_prefix(worker.hex)}tap.{uuid.uuid4().hex[:8]}",
                exclusive=True,
            )
            await queue.bind(worker.names.events_exchange, routing_key=key)

        await _refused(shared, tap, f"bind finetune.events {key}")
