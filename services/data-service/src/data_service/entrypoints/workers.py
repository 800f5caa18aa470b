"""data-service's events: the queue it declares and the job-events consumer (the relay and the
inbox pruning are servicekit's). The consumer owns its transactions like a request does."""

import asyncio
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from data_service.adapters.storage import remove_files
from data_service.adapters.tables import OUTBOX_CHANNEL, inbox, outbox
from data_service.entrypoints.deps import AppState
from data_service.service_layer.job_events import apply_job_events
from data_service.service_layer.unit_of_work import SOURCE
from messaging.consumer import InboxConsumer, Received
from messaging.inbox import Inbox
from servicekit.service import Events, Platform, own_queue, own_queue_consumer

DATA_SERVICE = SOURCE
# job.created.<type>.<provider> (a dataset comes into use), status changes (attempts, the end).
BINDINGS = ("job.created.#", "job.status_changed", "model.completed")
INBOX = Inbox(inbox, consumer=SOURCE)
queue_specs = own_queue(DATA_SERVICE, BINDINGS)
# Removals of files after a committed batch: held here so they are not collected mid-way.
_REMOVALS: set[asyncio.Task[None]] = set()


def make_consumer(platform: Platform, state: AppState) -> InboxConsumer:
    retention = state.settings.retention

    async def handle(conn: AsyncConnection, batch: Sequence[Received]) -> list[str]:
        return await apply_job_events(state.units.on(conn), batch, retention=retention)

    def committed(delete_keys: object) -> None:
        # Files of datasets deleted by retention go once their rows are gone.
        assert isinstance(delete_keys, list)
        if delete_keys:
            removal = asyncio.get_running_loop().create_task(
                remove_files(state.storage, delete_keys)
            )
            _REMOVALS.add(removal)
            removal.add_done_callback(_REMOVALS.discard)

    return own_queue_consumer(platform, state, handle, inbox=INBOX, on_committed=committed)


EVENTS = Events(outbox=outbox, outbox_channel=OUTBOX_CHANNEL, inbox=INBOX, consumer=make_consumer)
