"""Dataset routes: list, get, preview, delete (users), and the workers' ticketed download."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import structlog
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, RedirectResponse

from data_service.adapters.storage import LocalStorage, S3Storage
from data_service.domain.errors import DatasetNotFound
from data_service.entrypoints.deps import ReadUowDep, StateDep, UowDep, UserDep, scope
from data_service.entrypoints.preview import preview_rows
from data_service.entrypoints.schemas import DatasetResponse, PreviewResponse
from data_service.service_layer import datasets as dataset_service
from servicekit.auth import bearer_token
from servicekit.errors import ApiError
from servicekit.responses import CursorQuery, Data, Page, PageLimit, error_responses, keyset_after
from servicekit.tickets import InvalidTicketError, verify_data_ticket

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/finetune", tags=["datasets"], responses=error_responses(401, 422))

PREVIEW_BYTES = 256 * 1024
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


@router.get("/datasets")
async def list_datasets(
    uow: ReadUowDep, user: UserDep, limit: PageLimit = 50, cursor: CursorQuery = None
) -> Page[DatasetResponse]:
    """Your datasets, newest first."""
    after = keyset_after(cursor)
    rows = await uow.datasets.page(user_id=scope(user), after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    last = (rows[-1].created_at, rows[-1].id) if more else None
    return Page.after([DatasetResponse.of(r) for r in rows], last, limit)


@router.get("/datasets/{dataset_id}", responses=error_responses(404))
async def get_dataset(dataset_id: UUID, uow: ReadUowDep, user: UserDep) -> Data[DatasetResponse]:
    """One dataset: format, rows, columns, stats and its validation report."""
    row = await uow.datasets.get(dataset_id, user_id=scope(user))
    if row is None:
        raise DatasetNotFound(dataset_id)
    return Data(data=DatasetResponse.of(row))


@router.get("/datasets/{dataset_id}/preview", responses=error_responses(404))
async def preview_dataset(
    dataset_id: UUID,
    uow: ReadUowDep,
    state: StateDep,
    user: UserDep,
    rows: Annotated[int | None, Query(ge=1, le=200, description="How many rows.")] = None,
) -> Data[PreviewResponse]:
    """The first rows of a dataset."""
    row = await uow.datasets.get(dataset_id, user_id=scope(user))
    if row is None:
        raise DatasetNotFound(dataset_id)
    want = rows or state.settings.preview_rows
    head = await asyncio.to_thread(state.storage.read_head, row.storage_key, PREVIEW_BYTES)
    shown, truncated = preview_rows(
        head,
        row.format,
        row.columns,
        want,
        complete=len(head) < PREVIEW_BYTES,
        delimiter=row.report.get("delimiter") or ",",
    )
    truncated = truncated or row.rows > len(shown)
    return Data(
        data=PreviewResponse(
            id=row.id, format=row.format, columns=row.columns, rows=shown, truncated=truncated
        )
    )


@router.delete("/datasets/{dataset_id}", responses=error_responses(404, 409))
async def delete_dataset(dataset_id: UUID, uow: UowDep, user: UserDep) -> Data[DatasetResponse]:
    """Delete a dataset (409 while a pending or running job uses it)."""
    row = await dataset_service.delete_dataset(uow, dataset_id, user_id=scope(user))
    # The file goes once the row's deletion has committed (the response waits for both).
    uow.files_to_delete.append(row.storage_key)
    return Data(data=DatasetResponse.of(row))


def _ticket_error(code: str, message: str) -> ApiError:
    return ApiError(403, code, message)


@router.get(
    "/datasets/{dataset_id}/download",
    responses={**error_responses(400, 403, 404), 307: {"description": "S3: a presigned URL."}},
    include_in_schema=True,
)
async def download_dataset(
    dataset_id: UUID,
    request: Request,
    uow: ReadUowDep,
    state: StateDep,
    authorization: Annotated[
        str | None,
        Header(description="`Bearer <ticket>`: the data ticket from the job's claim."),
    ] = None,
) -> Any:
    """For workers: the dataset's bytes (Range supported), with the claim's data ticket sent as
    `Authorization: Bearer <ticket>` (never in the URL: a `ticket` query parameter is a 400)."""
    if "ticket" in request.query_params:
        # URLs end up in access logs, proxies' error logs and shell histories; headers do not.
        raise ApiError(
            400,
            "ticket_in_url",
            "Send the download ticket as `Authorization: Bearer <ticket>`, never in the URL, "
            "where logs would keep it.",
        )
    ticket = bearer_token(authorization)
    if ticket is None:
        raise ApiError(
            401,
            "missing_ticket",
            "Send the data ticket from the job's claim as `Authorization: Bearer <ticket>`.",
        )
    try:
        claims = verify_data_ticket(state.ticket_secret, ticket)
    except InvalidTicketError:
        raise _ticket_error(
            "invalid_ticket", "The download ticket is invalid or expired."
        ) from None
    if claims.dataset_id != dataset_id:
        raise _ticket_error("invalid_ticket", "The download ticket is for another dataset.")
    use = await uow.jobs.get(claims.job_id)
    if use is not None:
        if use.attempt > claims.attempt:
            raise _ticket_error(
                "stale_ticket",
                f"The ticket is for attempt {claims.attempt}; the job is at attempt {use.attempt}.",
            )
        if use.ended:
            raise _ticket_error("job_ended", "The job this ticket was issued for has ended.")
        if use.dataset_id is not None and use.dataset_id != dataset_id:
            raise _ticket_error("invalid_ticket", "The job does not use this dataset.")
    row = await uow.datasets.get(dataset_id, user_id=None)
    if row is None:
        raise DatasetNotFound(dataset_id)
    headers = {"x-content-sha256": row.sha256, "cache-control": "no-store"}
    storage = state.storage
    if isinstance(storage, S3Storage):
        left = claims.expires_at - datetime.now(UTC)
        ttl = min(timedelta(seconds=state.settings.presigned_url_seconds), left)
        url = await asyncio.to_thread(
            storage.presigned_url, row.storage_key, max(ttl, timedelta(seconds=1))
        )
        return RedirectResponse(url, status_code=307, headers=headers)
    assert isinstance(storage, LocalStorage)
    return FileResponse(
        storage.path(row.storage_key),
        media_type=MEDIA_TYPES.get(row.format, "application/octet-stream"),
        headers=headers,
        filename=f"{row.id}.{row.format}",
    )
