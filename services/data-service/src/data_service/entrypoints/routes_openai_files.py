"""OpenAI-compatible files: `/v1/files`, so that the `openai` package's `client.files.create /
list / retrieve / delete` work against this service unchanged (with a platform token as the
client's api_key).

A file is a dataset: uploading one runs the very validation and storage of
`POST /api/finetune/upload` (entrypoints.routes_upload), and its id is `file-<dataset id>`, which
job-api's `/v1/fine_tuning/jobs` accepts as `training_file`. What differs from OpenAI's API:
- `purpose` must be `fine-tune` (anything else: 400 `unsupported_purpose`);
- a file is validated while it is uploaded, so a malformed one is refused then (400
  `invalid_dataset`, the validation summary as the message) and a stored file is always
  `processed`;
- the job type is inferred from the content (chat or instruction JSONL trains llm_lora; the CSV
  shapes train embedding or classifier jobs); the optional form field `ftd_job_type` states it,
  and a file of another shape is refused (400 `job_type_mismatch`);
- `GET /v1/files/{id}/content` is not offered (OpenAI refuses it for fine-tune files too).
Errors are in OpenAI's shape (entrypoints.openai_errors).
"""

import asyncio
import uuid
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from data_service.adapters.file_pages import file_page
from data_service.adapters.storage import dataset_key
from data_service.domain.errors import DatasetNotFound
from data_service.entrypoints.deps import ReadUowDep, StateDep, UowDep, UserDep, scope
from data_service.entrypoints.metrics import UPLOADED_BYTES, UPLOADS
from data_service.entrypoints.multipart import PartStart, multipart_events
from data_service.entrypoints.openai_schemas import (
    FileDeleted,
    FileList,
    FileObject,
    dataset_id_of,
    file_id_for,
)
from data_service.entrypoints.routes_upload import (
    _field_value,
    _file_chunks,
    _forget,
    _invalid,
    _job_type,
    safe_filename,
    size_guard,
    too_large,
)
from data_service.service_layer import datasets as dataset_service
from data_service.service_layer.ingest import Ingested, TooLarge, ingest
from data_service.service_layer.validation.pipeline import Validation
from servicekit.errors import ApiError
from servicekit.openai_errors import OpenAIRoute, openai_error_responses

log = structlog.get_logger(__name__)

router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    route_class=OpenAIRoute,
    responses=openai_error_responses(400, 401),
)

PURPOSE = "fine-tune"
MAX_PAGE = 10_000
FILE_ID_PATTERN = (
    r"^file-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def _unsupported_purpose(value: str) -> ApiError:
    return ApiError(
        400,
        "unsupported_purpose",
        f"Only purpose {PURPOSE!r} is supported here (got {value[:40]!r}).",
        {"param": "purpose"},
    )


def _no_such_file(value: str) -> ApiError:
    return ApiError(404, "file_not_found", f"No such file: {value[:80]!r}.", {"param": "file_id"})


@router.post(
    "/files",
    responses={**openai_error_responses(413, 415), 200: {"model": FileObject}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "purpose"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "purpose": {"type": "string", "enum": [PURPOSE]},
                            "ftd_job_type": {
                                "type": "string",
                                "enum": ["embedding", "classifier", "llm_lora"],
                            },
                        },
                    }
                }
            },
        }
    },
)
async def create_file(
    request: Request,
    _guard: Annotated[None, Depends(size_guard)],
    state: StateDep,
    user: UserDep,
) -> Any:
    """Upload a training file (multipart `file`, `purpose=fine-tune`, optional `ftd_job_type`):
    validated and stored as a dataset; answers OpenAI's File object."""
    settings = state.settings
    events = multipart_events(request.headers.get("content-type"), request.stream())
    expected: str | None = None
    purpose: str | None = None
    result: Ingested | None = None
    filename = ""
    dataset_id = uuid.uuid4()
    key = dataset_key(dataset_id)
    try:
        async for event in events:
            if not isinstance(event, PartStart):
                continue
            if event.name == "purpose":
                purpose = await _field_value(events, "purpose")
                if purpose != PURPOSE:
                    raise _unsupported_purpose(purpose)
                continue
            if event.name == "ftd_job_type":
                expected = _job_type(await _field_value(events, "ftd_job_type")) or expected
                continue
            if event.name != "file":
                await _field_value(events, event.name)
                continue
            if result is not None:
                raise ApiError(400, "too_many_files", "Send one file per upload.")
            filename = safe_filename(event.filename)
            writer = await asyncio.to_thread(state.storage.writer, key)
            result = await ingest(
                _file_chunks(events),
                writer=writer,
                validation=Validation(settings.limits, expected),
                max_bytes=settings.max_upload_bytes,
            )
            if not result.report.valid:
                UPLOADS.labels("invalid").inc()
                raise _invalid(result)
        if result is None:
            raise ApiError(400, "missing_file", "The multipart body has no `file` part.")
        if purpose is None:
            raise ApiError(
                400, "missing_purpose", "Send `purpose` (fine-tune).", {"param": "purpose"}
            )
        if expected is not None and expected not in result.report.job_types:
            raise ApiError(
                400,
                "job_type_mismatch",
                f"The file has the {result.report.shape} shape, which trains "
                f"{', '.join(result.report.job_types)} jobs, not {expected}.",
                {"param": "ftd_job_type"},
            )
        async with state.units.writing() as uow:
            row = await dataset_service.record_upload(
                uow,
                dataset_id=dataset_id,
                user_id=user.user_id,
                filename=filename,
                storage_key=key,
                report=result.report,
                size_bytes=result.size_bytes,
                sha256=result.sha256,
            )
    except TooLarge as exc:
        UPLOADS.labels("too_large").inc()
        await _forget(state, result, key, False)
        raise too_large(exc.limit) from None
    except ClientDisconnect:
        log.info("upload.client_disconnected", dataset_id=str(dataset_id))
        await _forget(state, result, key, False)
        return Response(status_code=400)
    except BaseException:
        await _forget(state, result, key, False)
        raise
    UPLOADS.labels("stored").inc()
    UPLOADED_BYTES.inc(result.size_bytes)
    log.info(
        "upload.stored",
        dataset_id=str(dataset_id),
        size_bytes=result.size_bytes,
        rows=result.report.rows,
        format=result.report.format,
        api="openai",
    )
    return JSONResponse(FileObject.of(row).model_dump(mode="json"), status_code=200)


@router.get("/files", responses=openai_error_responses(404))
async def list_files(
    uow: ReadUowDep,
    user: UserDep,
    after: Annotated[
        str | None,
        Query(pattern=FILE_ID_PATTERN, description="The id of the last file of the previous page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = MAX_PAGE,
    order: Annotated[Literal["asc", "desc"], Query(description="By created_at.")] = "desc",
    purpose: Annotated[str | None, Query(description="Only files of this purpose.")] = None,
) -> FileList:
    """Your files (datasets), newest first unless `order=asc`; paged with `after`/`limit`."""
    if purpose is not None and purpose != PURPOSE:
        return FileList(data=[], has_more=False)
    owner = scope(user)
    cursor = None
    if after:
        anchor_id = dataset_id_of(after)
        anchor = await uow.datasets.get(anchor_id, user_id=owner) if anchor_id else None
        if anchor is None:
            raise ApiError(
                404,
                "file_not_found",
                f"`after` names no file of yours: {after!r}.",
                {"param": "after"},
            )
        cursor = (anchor.created_at, anchor.id)
    rows = await file_page(
        uow.conn, user_id=owner, after=cursor, limit=limit + 1, ascending=order == "asc"
    )
    more = len(rows) > limit
    files = [FileObject.of(r) for r in rows[:limit]]
    return FileList(
        data=files,
        first_id=files[0].id if files else None,
        last_id=files[-1].id if files else None,
        has_more=more,
    )


@router.get("/files/{file_id}", responses=openai_error_responses(404))
async def retrieve_file(file_id: str, uow: ReadUowDep, user: UserDep) -> FileObject:
    """One file."""
    dataset_id = dataset_id_of(file_id)
    row = await uow.datasets.get(dataset_id, user_id=scope(user)) if dataset_id else None
    if row is None:
        raise _no_such_file(file_id)
    return FileObject.of(row)


@router.delete("/files/{file_id}", responses=openai_error_responses(404, 409))
async def delete_file(file_id: str, uow: UowDep, user: UserDep) -> FileDeleted:
    """Delete a file (409 `dataset_in_use` while a pending or running job uses it)."""
    dataset_id = dataset_id_of(file_id)
    if dataset_id is None:
        raise _no_such_file(file_id)
    try:
        row = await dataset_service.delete_dataset(uow, dataset_id, user_id=scope(user))
    except DatasetNotFound:
        raise _no_such_file(file_id) from None
    # The file goes once the row's deletion has committed (the response waits for both).
    uow.files_to_delete.append(row.storage_key)
    return FileDeleted(id=file_id_for(row.id), deleted=True)
