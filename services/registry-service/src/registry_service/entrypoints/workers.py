"""registry-service's events: the queue it declares and the model.completed consumer (the relay
and the inbox pruning are servicekit's). The consumer owns its transactions like a request does."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import EventPayload, ModelCompleted
from messaging.consumer import InboxConsumer, Received
from messaging.inbox import Inbox
from registry_service.adapters.tables import OUTBOX_CHANNEL, inbox, outbox
from registry_service.entrypoints.deps import AppState
from registry_service.entrypoints.metrics import DUPLICATE_COMPLETIONS, MODELS_REGISTERED
from registry_service.service_layer.models import register_models
from registry_service.service_layer.unit_of_work import SOURCE, UnitOfWork
from servicekit.handlers import EventHandlers
from servicekit.service import Events, Platform, own_queue, own_queue_consumer

log = structlog.get_logger(__name__)

REGISTRY_SERVICE = SOURCE
# Routing keys registry-service consumes on the public events exchange.
BINDINGS = ("model.completed",)
INBOX = Inbox(inbox, consumer=SOURCE)
queue_specs = own_queue(REGISTRY_SERVICE, BINDINGS)


@dataclass
class Registered:
    """A batch's unit of work and clock, and what it registered."""

    uow: UnitOfWork = field(repr=False)
    now: datetime
    registered: int = 0
    duplicates: int = 0


HANDLERS: EventHandlers[Registered, EventPayload] = EventHandlers()


@HANDLERS.on(ModelCompleted)
async def model_completed(batch: Registered, event: ModelCompleted) -> None:
    if await register_models(batch.uow, [event], now=batch.now):
        batch.registered += 1
    else:
        batch.duplicates += 1


def make_consumer(platform: Platform, state: AppState) -> InboxConsumer:
    async def handle(conn: AsyncConnection, batch: Sequence[Received]) -> Registered:
        outcome = Registered(state.units.on(conn), datetime.now(UTC))
        for ignored in await HANDLERS.apply_each(outcome, batch):
            log.warning("registry.unexpected_event", event_type=ignored.envelope.type)
        return outcome

    def count(outcome: object) -> None:
        # Counted after commit: a rolled-back batch is retried and must not count twice.
        if isinstance(outcome, Registered):
            MODELS_REGISTERED.inc(outcome.registered)
            DUPLICATE_COMPLETIONS.inc(outcome.duplicates)

    return own_queue_consumer(platform, state, handle, inbox=INBOX, on_committed=count)


EVENTS = Events(outbox=outbox, outbox_channel=OUTBOX_CHANNEL, inbox=INBOX, consumer=make_consumer)
