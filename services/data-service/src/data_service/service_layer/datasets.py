"""Commands on datasets: record an upload, delete one (job-api's job events: job_events)."""

from datetime import UTC, datetime
from uuid import UUID

from contracts.events import DatasetDeleted, DatasetValidated
from data_service.adapters.repository import DatasetRow
from data_service.domain.errors import DatasetInUse, DatasetNotFound
from data_service.domain.report import ValidationReport
from data_service.service_layer.unit_of_work import UnitOfWork


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
            estimated_tokens=_estimated_tokens(report),
        )
    )
    return row


def _estimated_tokens(report: ValidationReport) -> int | None:
    """The validation report's token estimate, which job-api turns into time estimates."""
    tokens = report.stats.get("estimated_tokens")
    return tokens if isinstance(tokens, int) and tokens >= 0 else None


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
