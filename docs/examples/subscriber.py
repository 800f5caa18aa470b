"""Hear Finetune Dispatcher's public events as the broker's `subscriber` user (docs/subscribers.md).

    pip install aio-pika ./libs/contracts
    FTD_SUBSCRIBER_URL='amqp://subscriber:<password>@<broker>:5672/%2Ffinetune' \
        python docs/examples/subscriber.py my-app
"""

import asyncio
import os
import sys
from collections.abc import Callable

import aio_pika

from contracts.events import Envelope, EventPayload, payload_of

EXCHANGE = "finetune.events"
KEYS = ("model.completed", "model.deployed", "job.status_changed")


def parse(body: bytes) -> tuple[Envelope, EventPayload]:
    """The CloudEvents envelope and its typed payload (pydantic raises on a malformed event)."""
    envelope = Envelope.model_validate_json(body)
    return envelope, payload_of(envelope)


async def subscribe(url: str, name: str, handle: Callable[[Envelope, EventPayload], None]) -> None:
    async with await aio_pika.connect_robust(url) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=16)
        exchange = await channel.get_exchange(EXCHANGE, ensure=False)  # job-api declares it
        queue = await channel.declare_queue(f"subscriber.{name}.events", durable=True)
        for key in KEYS:
            await queue.bind(exchange, routing_key=key)
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process(requeue=False):  # a bad event is dropped, not retried
                    handle(*parse(message.body))


if __name__ == "__main__":
    asyncio.run(
        subscribe(
            os.environ["FTD_SUBSCRIBER_URL"],
            sys.argv[1],
            lambda envelope, payload: print(envelope.type, envelope.subject, payload),
        )
    )
