"""The broker's `subscriber` role (deploy/rabbitmq/subscriber.json, docs/subscribers.md) on the
local RabbitMQ: loaded through the management API into a fresh vhost (its user renamed, since
users are broker-wide), it runs docs/examples/subscriber.py, which binds its own queue and gets a
model.deployed event shaped like the AsyncAPI document; it is refused publishing, consuming a work
queue, declaring outside its names and binding a routing key that is not public.
"""

import asyncio
import importlib.util
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import aio_pika
import aiormq
import httpx
import jsonschema
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

from contracts.enums import CancelReason, GPUProvider, JobType
from contracts.events import Envelope, EventPayload, JobCancelRequested, ModelDeployed
from contracts.routing import BrokerNames

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "deploy/rabbitmq/subscriber.json"
MANAGEMENT = "http://127.0.0.1:15672/api"
GUEST = ("guest", "guest")
NAMES = BrokerNames()
WORK_QUEUE = NAMES.work_queue(JobType.EMBEDDING, GPUProvider.LOCAL)


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "ftd_subscriber_example", ROOT / "docs/examples/subscriber.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _url(vhost: str, user: str, password: str) -> str:
    return f"amqp://{user}:{password}@127.0.0.1:5672/{quote(vhost, safe='')}"


class Broker:
    def __init__(self, vhost: str, user: str, password: str) -> None:
        self.vhost, self.user, self.password = vhost, user, password

    def url(self, as_subscriber: bool = True) -> str:
        if as_subscriber:
            return _url(self.vhost, self.user, self.password)
        return _url(self.vhost, *GUEST)


@pytest.fixture(scope="module")
async def broker() -> AsyncIterator[Broker]:
    """The shipped definitions, vhost and user renamed, imported as they are; the topology
    job-api declares (the events exchange, a work queue) made as guest."""
    tag = uuid.uuid4().hex[:8]
    vhost, user, password = f"ftd-sub-{tag}", f"subscriber-test-{tag}", uuid.uuid4().hex
    text = DEFINITIONS.read_text()
    definitions = json.loads(text.replace('"/finetune"', json.dumps(vhost)))
    for section in ("users", "permissions", "topic_permissions"):
        for entry in definitions[section]:
            entry["name" if section == "users" else "user"] = user
    async with httpx.AsyncClient(base_url=MANAGEMENT, auth=GUEST, timeout=30) as api:
        try:
            (await api.post("/definitions", json=definitions)).raise_for_status()
            (
                await api.put(
                    f"/permissions/{quote(vhost, safe='')}/guest",
                    json={"configure": ".*", "write": ".*", "read": ".*"},
                )
            ).raise_for_status()
            (
                await api.put(f"/users/{user}", json={"password": password, "tags": ""})
            ).raise_for_status()
            admin = await aio_pika.connect(_url(vhost, *GUEST))
            channel = await admin.channel()
            events = await channel.declare_exchange(
                NAMES.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            work = await channel.declare_queue(WORK_QUEUE, durable=True)
            await work.bind(events, "job.created.embedding.local")
            await admin.close()
            yield Broker(vhost, user, password)
        finally:
            await api.delete(f"/users/{user}")
            await api.delete(f"/vhosts/{quote(vhost, safe='')}")


async def _publish(broker: Broker, payload: EventPayload, key: str | None = None) -> bytes:
    body = Envelope.wrap(payload, source="registry-service").model_dump_json().encode()
    async with await aio_pika.connect(broker.url(as_subscriber=False)) as connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(NAMES.events_exchange, ensure=False)
        await exchange.publish(aio_pika.Message(body=body), key or payload.routing_key())
    return body


def _deployed() -> ModelDeployed:
    return ModelDeployed(
        model_id=uuid.uuid4(),
        job_id=uuid.uuid4(),
        user_id="alice",
        repo_id="alice/my-embedder",
        revision="abc123",
        job_type=JobType.EMBEDDING,
        deployed=True,
        deployed_at=datetime.now(UTC),
    )


def test_the_shipped_role_is_the_documented_one() -> None:
    definitions = json.loads(DEFINITIONS.read_text())
    assert [u["name"] for u in definitions["users"]] == ["subscriber"]
    assert definitions["users"][0]["password_hash"] == "", "no one logs in until a password is set"
    (topic,) = definitions["topic_permissions"]
    assert topic["exchange"] == "finetune.events"  # a name, not a pattern
    doc = (ROOT / "docs/subscribers.md").read_text()
    for key in ("model.completed", "model.deployed", "job.status_changed"):
        assert key in topic["read"].replace("\\.", ".")
        assert f"`{key}`" in doc


async def test_the_example_subscriber_hears_model_deployed(broker: Broker) -> None:
    example = _example()
    heard: asyncio.Queue[tuple[Envelope, EventPayload]] = asyncio.Queue()
    task = asyncio.create_task(
        example.subscribe(broker.url(), "probe", lambda e, p: heard.put_nowait((e, p)))
    )
    try:
        # The queue and its bindings exist once the example is consuming.
        async with httpx.AsyncClient(base_url=MANAGEMENT, auth=GUEST) as api:
            queue = f"/queues/{quote(broker.vhost, safe='')}/subscriber.probe.events"
            for _ in range(100):
                found = await api.get(queue)
                if found.status_code == 200 and found.json().get("consumers"):
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the example never consumed its queue")
        payload = _deployed()
        body = await _publish(broker, payload)
        envelope, parsed = await asyncio.wait_for(heard.get(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert isinstance(parsed, ModelDeployed)
    assert parsed == payload
    assert envelope.type == "model.deployed"
    # What was sent is what the AsyncAPI document describes for model.deployed.
    asyncapi = json.loads((ROOT / "docs/contracts/asyncapi.json").read_text())
    schema = {
        "$ref": "#/components/messages/ModelDeployed/payload",
        "components": asyncapi["components"],
    }
    jsonschema.Draft202012Validator(schema).validate(json.loads(body))
    assert asyncapi["components"]["messages"]["ModelDeployed"]["name"] == envelope.type


Action = Callable[[AbstractChannel], Awaitable[object]]


async def _refused(connection: AbstractConnection, action: Action) -> None:
    channel = await connection.channel(publisher_confirms=True)
    with pytest.raises(
        (aiormq.exceptions.ChannelAccessRefused, aio_pika.exceptions.ChannelClosed)
    ) as refused:
        await action(channel)
    assert "ACCESS_REFUSED" in repr(refused.value)


async def _ignore(_message: Any) -> None:
    return None


async def test_the_subscriber_may_do_nothing_else(broker: Broker) -> None:
    async def publish_event(channel: AbstractChannel) -> None:
        exchange = await channel.get_exchange(NAMES.events_exchange, ensure=False)
        body = Envelope.wrap(_deployed(), source="mallory").model_dump_json().encode()
        await exchange.publish(aio_pika.Message(body=body), "model.deployed")

    async def publish_default(channel: AbstractChannel) -> None:
        await channel.default_exchange.publish(aio_pika.Message(body=b"{}"), WORK_QUEUE)

    async def consume_work(channel: AbstractChannel) -> None:
        queue = await channel.get_queue(WORK_QUEUE, ensure=False)
        await queue.consume(_ignore)

    async def get_work(channel: AbstractChannel) -> None:
        queue = await channel.get_queue(WORK_QUEUE, ensure=False)
        await queue.get(no_ack=True, fail=False)

    def bind(key: str) -> Action:
        async def act(channel: AbstractChannel) -> None:
            queue = await channel.declare_queue("subscriber.mallory.tap", durable=True)
            exchange = await channel.get_exchange(NAMES.events_exchange, ensure=False)
            await queue.bind(exchange, routing_key=key)

        return act

    async def foreign_queue(channel: AbstractChannel) -> None:
        await channel.declare_queue("job-api.events.tap", durable=True)

    async def events_exchange(channel: AbstractChannel) -> None:
        await channel.declare_exchange(
            NAMES.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )

    cancel_key = JobCancelRequested(job_id=uuid.uuid4(), reason=CancelReason.USER).routing_key()
    async with await aio_pika.connect(broker.url()) as connection:
        for action in (
            publish_event,
            publish_default,
            consume_work,
            get_work,
            bind(cancel_key),  # a worker's cancel notice
            bind("job.created.embedding.local"),  # the work offers
            bind("dataset.validated"),
            bind("#"),  # everything
            foreign_queue,
            events_exchange,
        ):
            await _refused(connection, action)
        # The control: the same connection binds a public key to its own queue.
        channel = await connection.channel()
        await bind("job.status_changed")(channel)
