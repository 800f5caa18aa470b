"""data-service's background work: the outbox relay and the job-events consumer."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from data_service.adapters.tables import inbox, outbox
from data_service.entrypoints.deps import AppState, remove_files
from data_service.service_layer.datasets import EventOutcome, apply_job_events
from data_service.service_layer.unit_of_work import SOURCE, UnitOfWork
from messaging.broker import Broker
from messaging.consumer import InboxConsumer, Received
from messaging.inbox import Inbox
from messaging.outbox import OutboxRelay
from messaging.topology import QueueSpec

log = structlog.get_logger(__name__)

DATA_SERVICE = "data-service"
# job.created.<type>.<provider> (a dataset comes into use), status changes (attempts, the end).
BINDINGS = ("job.created.#", "job.status_changed", "model.completed")
INBOX = Inbox(inbox, consumer=SOURCE)


def queue_specs(broker: Broker) -> list[QueueSpec]:
    return [QueueSpec(name=broker.names.service_queue(DATA_SERVICE), bindings=BINDINGS)]


def make_relay(broker: Broker, dsn: str, channel: str) -> OutboxRelay:
    """The relay, on a connection of its own (`dsn`), not one of the engine's."""
    return OutboxRelay(dsn=dsn, table=outbox, broker=broker, channel=channel)


def make_consumer(state: AppState, broker: Broker) -> InboxConsumer:
    retention = state.settings.retention

    async def handle(conn: AsyncConnection, batch: Sequence[Received]) -> EventOutcome:
        return await apply_job_events(
            UnitOfWork(conn), [r.payload for r in batch], retention=retention
        )

    def committed(outcome: object) -> None:
        assert isinstance(outcome, EventOutcome)
        if outcome.delete_keys:
            # Files of datasets deleted by retention go once their rows are gone.
            task = asyncio.get_running_loop().create_task(remove_files(state, outcome.delete_keys))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    return InboxConsumer(
        broker=broker,
        queue=broker.names.service_queue(DATA_SERVICE),
        begin=lambda: state.db.write("consumer"),
        inbox=INBOX,
        handler=handle,
        on_committed=committed,
    )


_BACKGROUND: set[asyncio.Task[None]] = set()


async def supervised(name: str, run: Callable[[], Awaitable[object]]) -> None:
    """Run a long-lived worker and restart it if it ever ends."""
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
    while True:
        try:
            async with state.db.write("consumer") as conn:
                await INBOX.prune(conn, retention)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("inbox.prune_failed")
        await asyncio.sleep(interval)
