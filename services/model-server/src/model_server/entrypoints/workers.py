"""model-server's events: the registry's model.deployed and model.deleted, applied to the
projection of deployed models, after which the model pool is brought in step with it.

Two queues bring them:
- the replica's own queue (exclusive, auto-deleted with its connection, named after the replica):
  every replica gets every event, so every replica loads and unloads at once;
- the service's shared durable queue (`model-server.events`): events published while no replica
  runs wait there, and the first replica to start applies them.
Both apply the same idempotent projection (an event's effect is applied at most once per inbox,
and applying it again changes nothing), then wake the reconciler.
"""

import re
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aio_pika.abc import AbstractChannel
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import ModelDeleted, ModelDeployed
from messaging.broker import Broker
from messaging.consumer import InboxConsumer, Received
from messaging.inbox import Inbox
from model_server.adapters.tables import inbox
from model_server.entrypoints.deps import AppState
from model_server.service_layer.projection import ModelEvent, apply_events
from model_server.service_layer.unit_of_work import SOURCE
from servicekit.service import Platform, own_queue, own_queue_consumer

log = structlog.get_logger(__name__)

BINDINGS = (ModelDeployed.event_type, ModelDeleted.event_type)
SHARED_INBOX = Inbox(inbox, consumer=SOURCE)
queue_specs = own_queue(SOURCE, BINDINGS)


def replica_name(configured: str | None) -> str:
    """This process's name on the broker: the configured one, else host name and a random tail."""
    raw = configured or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", raw)[:100]


def replica_queue(broker: Broker, replica: str) -> str:
    return broker.names.service_queue(f"{SOURCE}.replica.{replica}")


async def declare_replica_queue(broker: Broker, replica: str) -> AbstractChannel:
    """The replica's own queue, bound to the model events. Exclusive to this connection (its
    consumer's channel is on it too) and deleted when the connection closes; the channel it was
    declared on is kept open, so that aio-pika declares it again after a reconnect."""
    channel = await broker.channel()
    queue = await channel.declare_queue(
        replica_queue(broker, replica),
        durable=False,
        exclusive=True,
        auto_delete=True,
        arguments={"x-dead-letter-exchange": broker.names.dead_letter_exchange},
    )
    exchange = await channel.get_exchange(broker.names.events_exchange, ensure=True)
    for key in BINDINGS:
        await queue.bind(exchange, routing_key=key)
    return channel


Handle = Callable[[AsyncConnection, Sequence[Received]], Awaitable[int]]


def _handler(state: AppState) -> Handle:
    async def handle(conn: AsyncConnection, batch: Sequence[Received]) -> int:
        events: list[ModelEvent] = []
        for r in batch:
            if isinstance(r.payload, ModelDeployed | ModelDeleted):
                events.append((r.payload, r.envelope.time))
            else:
                log.warning("model_server.unexpected_event", event_type=r.envelope.type)
        return await apply_events(state.units.on(conn), events)

    return handle


def _poke(state: AppState) -> Callable[[object], None]:
    def committed(_changed: object) -> None:
        # Always: the other queue's consumer may have applied the same event first.
        state.reconciler.poke()

    return committed


def shared_consumer(platform: Platform, state: AppState) -> InboxConsumer:
    return own_queue_consumer(
        platform, state, _handler(state), inbox=SHARED_INBOX, on_committed=_poke(state)
    )


def replica_inbox(replica: str) -> Inbox:
    return Inbox(inbox, consumer=f"{SOURCE}.replica.{replica}")


def replica_consumer(platform: Platform, state: AppState) -> InboxConsumer:
    broker = platform.broker
    return InboxConsumer(
        broker=broker,
        queue=replica_queue(broker, state.replica),
        begin=state.units.begin("consumer"),
        inbox=replica_inbox(state.replica),
        handler=_handler(state),
        on_committed=_poke(state),
    )
