"""registry-service's events: the queue it declares and the model.completed consumer (the relay
and the inbox pruning are servicekit's). The consumer owns its transactions like a request does."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import ModelCompleted
from messaging.consumer import InboxConsumer, Received
from messaging.inbox import Inbox
from registry_service.adapters.tables import OUTBOX_CHANNEL, inbox, outbox
from registry_service.entrypoints.deps import AppState
from registry_service.entrypoints.metrics import DUPLICATE_COMPLETIONS, MODELS_REGISTERED
from registry_service.service_layer.models import register_models
from registry_service.service_layer.unit_of_work import SOURCE
from servicekit.service import Events, Platform, own_queue, own_queue_consumer

log = structlog.get_logger(__name__)

REGISTRY_SERVICE = SOURCE
# Routing keys registry-service consumes on the public events exchange.
BINDINGS = ("model.completed",)
INBOX = Inbox(inbox, consumer=SOURCE)
queue_specs = own_queue(REGISTRY_SERVICE, BINDINGS)


@dataclass(frozen=True)
class Registered:
    registered: int
    duplicates: int


def make_consumer(platform: Platform, state: AppState) -> InboxConsumer:
    async def handle(conn: AsyncConnection, batch: Sequence[Received]) -> Registered:
        events = [r.payload for r in batch if isinstance(r.payload, ModelCompleted)]
        for r in batch:
            if not isinstance(r.payload, ModelCompleted):
                log.warning("registry.unexpected_event", event_type=r.envelope.type)
        models = await register_models(state.units.on(conn), events, now=datetime.now(UTC))
        return Registered(len(models), len(events) - len(models))

    def count(outcome: object) -> None:
        # Counted after commit: a rolled-back batch is retried and must not count twice.
        assert isinstance(outcome, Registered)
        MODELS_REGISTERED.inc(outcome.registered)
        DUPLICATE_COMPLETIONS.inc(outcome.duplicates)

    return own_queue_consumer(platform, state, handle, inbox=INBOX, on_committed=count)


EVENTS = Events(outbox=outbox, outbox_channel=OUTBOX_CHANNEL, inbox=INBOX, consumer=make_consumer)
