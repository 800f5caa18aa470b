"""How data-service follows job-api's job events: which jobs use which dataset (a dataset in use
cannot be deleted), and with retention `delete_after_completion`, the dataset deleted once the
last job using it has completed. One handler per event type (servicekit.handlers)."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

import structlog

from contracts.enums import JobStatus
from contracts.events import (
    DatasetDeleted,
    EventPayload,
    JobCreated,
    JobStatusChanged,
    ModelCompleted,
)
from data_service.service_layer.unit_of_work import UnitOfWork
from messaging.received import Received
from servicekit.handlers import EventHandlers

log = structlog.get_logger(__name__)

Retention = Literal["keep", "delete_after_completion"]
TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class JobEvents:
    """What the handlers share: the batch's unit of work (storage keys of the datasets they
    delete go to its `files_to_delete`) and the retention policy."""

    uow: UnitOfWork
    retention: Retention


HANDLERS: EventHandlers[JobEvents, EventPayload] = EventHandlers()


@HANDLERS.on(JobCreated)
async def job_created(on: JobEvents, event: JobCreated) -> None:
    if event.dataset_id is not None:
        await on.uow.jobs.record(
            event.job_id,
            dataset_id=event.dataset_id,
            attempt=0,
            status=str(JobStatus.PENDING),
            ended=False,
        )


@HANDLERS.on(JobStatusChanged)
async def job_status_changed(on: JobEvents, event: JobStatusChanged) -> None:
    ended = event.to_status in TERMINAL
    use = await on.uow.jobs.record(
        event.job_id,
        dataset_id=event.dataset_id,
        attempt=event.attempt,
        status=str(event.to_status),
        ended=ended,
    )
    if event.to_status == JobStatus.COMPLETED:
        await _after_completion(on, use.dataset_id)


@HANDLERS.on(ModelCompleted)
async def model_completed(on: JobEvents, event: ModelCompleted) -> None:
    # job-api publishes it once per completed job; the status event says the same.
    known = await on.uow.jobs.get(event.job_id)
    if known is not None:
        await _after_completion(on, known.dataset_id)


async def apply_job_events(
    uow: UnitOfWork, batch: Sequence[Received], *, retention: Retention
) -> list[str]:
    """Apply a batch of events in `uow`'s transaction, each within its trace; returns the
    storage keys to remove once it has committed."""
    for ignored in await HANDLERS.apply_each(JobEvents(uow, retention), batch):
        log.warning("data.unexpected_event", event_type=ignored.envelope.type)
    return uow.files_to_delete


async def _after_completion(on: JobEvents, dataset_id: UUID | None) -> None:
    if on.retention != "delete_after_completion" or dataset_id is None:
        return
    uow = on.uow
    if not await uow.datasets.lock(dataset_id):
        return  # already deleted
    if await uow.jobs.active_for(dataset_id):
        return  # another job still needs it; the last one to finish deletes it
    row = await uow.datasets.delete(dataset_id)
    if row is not None:
        await uow.publish(
            DatasetDeleted(dataset_id=dataset_id, user_id=row.user_id, reason="retention")
        )
        uow.files_to_delete.append(row.storage_key)
