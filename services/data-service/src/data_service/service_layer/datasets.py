"""Commands on datasets: record an upload, delete one, and react to job-api's job events."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

from contracts.enums import JobStatus
from contracts.events import (
    DatasetDeleted,
    DatasetValidated,
    EventPayload,
    JobCreated,
    JobStatusChanged,
    ModelCompleted,
)
from data_service.adapters.repository import DatasetRow
from data_service.domain.errors import DatasetInUse, DatasetNotFound
from data_service.domain.report import ValidationReport
from data_service.service_layer.unit_of_work import UnitOfWork

Retention = Literal["keep", "delete_after_completion"]
TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


async def record_upload(
    uow: UnitOfWork,
    *,
    dataset_id: UUID,
    user_id: str,
    filename: str,
    storage_key: str,
    report: ValidationReport,
    size_bytes: int,
    sha256: str,
) -> DatasetRow:
    assert report.valid
    assert report.format is not None
    assert report.shape is not None
    row = DatasetRow(
        id=dataset_id,
        user_id=user_id,
        filename=filename,
        storage_key=storage_key,
        format=report.format,
        shape=report.shape,
        job_types=report.job_types,
        rows=report.rows,
        columns=report.columns,
        size_bytes=size_bytes,
        sha256=sha256,
        stats=report.stats,
        report=report.as_dict(),
        created_at=datetime.now(UTC),
    )
    await uow.datasets.add(row)
    await uow.publish(
        DatasetValidated(
            dataset_id=dataset_id,
            user_id=user_id,
            filename=filename,
            format=report.format,
            job_types=report.job_types,
            rows=report.rows,
            size_bytes=size_bytes,
            sha256=sha256,
        )
    )
    return row


async def delete_dataset(
    uow: UnitOfWork, dataset_id: UUID, *, user_id: str | None, reason: str = "deleted by user"
) -> DatasetRow:
    """Delete the row and announce it; the caller removes the file once this has committed."""
    row = await uow.datasets.get(dataset_id, user_id=user_id)
    if row is None:
        raise DatasetNotFound(dataset_id)
    await uow.datasets.lock(dataset_id)
    active = await uow.jobs.active_for(dataset_id)
    if active:
        raise DatasetInUse(dataset_id, active)
    await uow.datasets.delete(dataset_id)
    await uow.publish(DatasetDeleted(dataset_id=dataset_id, user_id=row.user_id, reason=reason))
    return row


@dataclass
class EventOutcome:
    """Storage keys to remove once the transaction has committed."""

    delete_keys: list[str] = field(default_factory=list)


async def apply_job_events(
    uow: UnitOfWork, payloads: Sequence[EventPayload], *, retention: Retention
) -> EventOutcome:
    outcome = EventOutcome()
    for payload in payloads:
        if isinstance(payload, JobCreated):
            if payload.dataset_id is not None:
                await uow.jobs.record(
                    payload.job_id,
                    dataset_id=payload.dataset_id,
                    attempt=0,
                    status=str(JobStatus.PENDING),
                    ended=False,
                )
        elif isinstance(payload, JobStatusChanged):
            ended = payload.to_status in TERMINAL
            use = await uow.jobs.record(
                payload.job_id,
                dataset_id=payload.dataset_id,
                attempt=payload.attempt,
                status=str(payload.to_status),
                ended=ended,
            )
            if ended and payload.to_status == JobStatus.COMPLETED:
                await _after_completion(uow, use.dataset_id, retention, outcome)
        elif isinstance(payload, ModelCompleted):
            # job-api publishes it once per completed job; the status event says the same.
            known = await uow.jobs.get(payload.job_id)
            if known is not None:
                await _after_completion(uow, known.dataset_id, retention, outcome)
    return outcome


async def _after_completion(
    uow: UnitOfWork, dataset_id: UUID | None, retention: Retention, outcome: EventOutcome
) -> None:
    if retention != "delete_after_completion" or dataset_id is None:
        return
    if not await uow.datasets.lock(dataset_id):
        return  # already deleted
    if await uow.jobs.active_for(dataset_id):
        return  # another job still needs it; the last one to finish deletes it
    row = await uow.datasets.delete(dataset_id)
    if row is not None:
        await uow.publish(
            DatasetDeleted(dataset_id=dataset_id, user_id=row.user_id, reason="retention")
        )
        outcome.delete_keys.append(row.storage_key)
