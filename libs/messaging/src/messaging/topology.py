"""Declares, checks and (for tests) deletes the broker topology a service relies on.

Work queues are quorum queues with a delivery limit: a message that keeps failing is dead-lettered
(at-least-once) instead of looping. Everything is declared idempotently at start-up, so a service
started against an empty broker (or a fresh vhost) creates what it needs.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue

from contracts.routing import DELIVERY_LIMIT, BrokerNames

log = structlog.get_logger(__name__)


def quorum_arguments(names: BrokerNames, *, delivery_limit: int = DELIVERY_LIMIT) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": names.dead_letter_exchange,
        "x-dead-letter-strategy": "at-least-once",
        # at-least-once dead-lettering needs reject-publish overflow on the source queue.
        "x-overflow": "reject-publish",
    }


@dataclass
class QueueSpec:
    name: str
    bindings: Sequence[str] = field(default_factory=tuple)
    delivery_limit: int = DELIVERY_LIMIT
    # Bind to this topic exchange (declared with the queue) instead of the events exchange: the
    # claims exchange in front of job-api's RPC queue, whose keys broker permissions can narrow.
    exchange: str | None = None
    # Keys bound on the worker exchange (worker reports): only job-api's queue has any.
    worker_bindings: Sequence[str] = field(default_factory=tuple)


async def declare_core(
    channel: AbstractChannel, names: BrokerNames, *, worker_exchange: bool = True
) -> None:
    """The events exchange, the dead-letter exchange and queue and, for its owner (the service
    whose queue binds worker reports: job-api), the worker exchange. Another service's broker user
    may not configure the worker exchange (deploy/rabbitmq/definitions.json), so it never
    declares it."""
    await channel.declare_exchange(names.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    if worker_exchange:
        await channel.declare_exchange(
            names.worker_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
    dlx = await channel.declare_exchange(
        names.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dlq = await channel.declare_queue(
        names.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dlx)


async def declare_queue(
    channel: AbstractChannel, names: BrokerNames, spec: QueueSpec
) -> AbstractQueue:
    queue = await channel.declare_queue(
        spec.name,
        durable=True,
        arguments=quorum_arguments(names, delivery_limit=spec.delivery_limit),
    )
    exchange = names.events_exchange
    if spec.exchange is not None:
        await channel.declare_exchange(spec.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        exchange = spec.exchange
    for key in spec.bindings:
        await queue.bind(exchange, routing_key=key)
    for key in spec.worker_bindings:
        await queue.bind(names.worker_exchange, routing_key=key)
    return queue


def work_queue_specs(names: BrokerNames) -> list[QueueSpec]:
    """The shared pool's work queues: one per job type, provider and hardware class."""
    return [
        QueueSpec(name=queue, bindings=names.work_bindings(job_type, provider, hardware_class))
        for job_type, provider, hardware_class, queue in names.all_work_routes()
    ]


async def declare_topology(
    channel: AbstractChannel, names: BrokerNames, queues: Sequence[QueueSpec]
) -> None:
    await declare_core(channel, names, worker_exchange=any(spec.worker_bindings for spec in queues))
    for spec in queues:
        await declare_queue(channel, names, spec)
    log.info("broker.topology_declared", queues=len(queues), prefix=names.prefix or None)


async def consumer_count(channel: AbstractChannel, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    result = declared.declaration_result
    return int(result.consumer_count or 0)


async def delete_topology(
    channel: AbstractChannel,
    names: BrokerNames,
    queues: Sequence[str],
    exchanges: Sequence[str] = (),
) -> None:
    """Tear down a (test) topology. RabbitMQ 3.10 refuses if-unused on quorum queues."""
    for name in (*queues, names.dead_letter_queue):
        await channel.queue_delete(name, if_unused=False, if_empty=False)
    for exchange in (
        *exchanges,
        names.events_exchange,
        names.worker_exchange,
        names.dead_letter_exchange,
    ):
        await channel.exchange_delete(exchange, if_unused=False)
