"""registry-service's background work: the outbox relay, the model.completed consumer and the
inbox pruning. Each owns its transactions like a request does."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import ModelCompleted
from messaging.broker import Broker
from messaging.consumer import InboxConsumer, Received
from messaging.inbox import Inbox
from messaging.outbox import OutboxRelay
from messaging.topology import QueueSpec
from registry_service.adapters.tables import inbox, outbox
from registry_service.entrypoints.deps import AppState
from registry_service.entrypoints.metrics import DUPLICATE_COMPLETIONS, MODELS_REGISTERED
from registry_service.service_layer.models import register_models
from registry_service.service_layer.unit_of_work import SOURCE, UnitOfWork

log = structlog.get_logger(__name__)

REGISTRY_SERVICE = SOURCE
# Routing keys registry-service consumes on the public events exchange.
BINDINGS = ("model.completed",)
INBOX = Inbox(inbox, consumer=SOURCE)


def queue_specs(broker: Broker) -> list[QueueSpec]:
    return [QueueSpec(name=broker.names.service_queue(REGISTRY_SERVICE), bindings=BINDINGS)]


def make_relay(broker: Broker, dsn: str, channel: str) -> OutboxRelay:
    """The relay, on a connection of its own (`dsn`), not one of the engine's."""
    return OutboxRelay(dsn=dsn, table=outbox, broker=broker, channel=channel)


@dataclass(frozen=True)
class Registered:
    registered: int
    duplicates: int


def make_consumer(state: AppState, broker: Broker) -> InboxConsumer:
    async def handle(conn: AsyncConnection, batch: Sequence[Received]) -> Registered:
        events = [r.payload for r in batch if isinstance(r.payload, ModelCompleted)]
        for r in batch:
            if not isinstance(r.payload, ModelCompleted):
                log.warning("registry.unexpected_event", event_type=r.envelope.type)
        models = await register_models(UnitOfWork(conn), events, now=datetime.now(UTC))
        return Registered(len(models), len(events) - len(models))

    def count(outcome: object) -> None:
        # Counted after commit: a rolled-back batch is retried and must not count twice.
        assert isinstance(outcome, Registered)
        MODELS_REGISTERED.inc(outcome.registered)
        DUPLICATE_COMPLETIONS.inc(outcome.duplicates)

    return InboxConsumer(
        broker=broker,
        queue=broker.names.service_queue(REGISTRY_SERVICE),
        begin=lambda: state.db.write("consumer"),
        inbox=INBOX,
        handler=handle,
        on_committed=count,
    )


async def supervised(name: str, run: Callable[[], Awaitable[object]]) -> None:
    """Run a long-lived worker (relay, consumer) and restart it if it ever ends."""
    while True:
        try:
            await run()
            log.warning(f"{name}.stopped")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(f"{name}.crashed")
        await asyncio.sleep(1)


async def prune_inbox(state: AppState, retention: timedelta, interval: float = 3600) -> None:
    """Forget processed event ids older than any redelivery could be, once an hour."""
    while True:
        try:
            async with state.db.write("consumer") as conn:
                await INBOX.prune(conn, retention)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("registry.inbox_prune_failed")
        await asyncio.sleep(interval)
