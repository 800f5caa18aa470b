"""webhook-service's events and background work: the queue it declares, the consumer of job-api's
job.status_changed and the registry's model.deployed (which writes deliveries in the batch's
transaction, with its inbox rows), and the sender of due deliveries."""

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import JobStatusChanged, ModelDeployed
from messaging.consumer import InboxConsumer, Received
from messaging.inbox import Inbox
from servicekit.service import Platform, own_queue, own_queue_consumer
from webhook_service.adapters.tables import inbox
from webhook_service.domain.deliveries import Attempt, Delivery
from webhook_service.entrypoints.deps import AppState
from webhook_service.entrypoints.metrics import ATTEMPTS, DELIVERIES_CREATED
from webhook_service.service_layer.deliveries import deliveries_for
from webhook_service.service_layer.unit_of_work import SOURCE

BINDINGS = (JobStatusChanged.event_type, ModelDeployed.event_type)
INBOX = Inbox(inbox, consumer=SOURCE)
queue_specs = own_queue(SOURCE, BINDINGS)


def make_consumer(platform: Platform, state: AppState) -> InboxConsumer:
    async def handle(conn: AsyncConnection, batch: Sequence[Received]) -> int:
        return await deliveries_for(state.units.on(conn), batch, now=datetime.now(UTC))

    def committed(created: object) -> None:
        assert isinstance(created, int)
        DELIVERIES_CREATED.inc(created)
        if created:
            state.sender.poke()

    return own_queue_consumer(platform, state, handle, inbox=INBOX, on_committed=committed)


def observe(delivery: Delivery, _attempt: Attempt) -> None:
    ATTEMPTS.labels(outcome=str(delivery.status)).inc()
