"""Settling a delivery on the channel it came on (aiormq's, below aio-pika): ack, nack back to
the queue, reject to the dead-letter exchange."""

from collections.abc import Awaitable

import structlog
from aiormq.abc import DeliveredMessage

log = structlog.get_logger(__name__)


async def settle(outcome: Awaitable[None]) -> None:
    """Ack/nack; after a reconnect the delivery tag is void and the broker redelivers (the inbox
    then recognises the event), so a failure here is logged, not raised."""
    try:
        await outcome
    except Exception as exc:
        log.warning("consumer.settle_failed", error=repr(exc))


def delivery_tag(message: DeliveredMessage) -> int:
    tag = message.delivery_tag
    assert tag is not None  # a Basic.Deliver always has one
    return tag


def ack(message: DeliveredMessage, *, multiple: bool = False) -> Awaitable[None]:
    return message.channel.basic_ack(delivery_tag(message), multiple=multiple)


def nack(message: DeliveredMessage) -> Awaitable[None]:
    """Back to the queue; the quorum queue counts it against the delivery limit."""
    return message.channel.basic_nack(delivery_tag(message), requeue=True)


def reject(message: DeliveredMessage) -> Awaitable[None]:
    """Dead-lettered (the queue's dead-letter exchange)."""
    return message.channel.basic_reject(delivery_tag(message), requeue=False)
