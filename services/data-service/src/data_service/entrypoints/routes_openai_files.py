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

from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from data_service.adapters.file_pages import file_page
from data_service.domain.errors import DatasetNotFound
from data_service.entrypoints.deps import ReadUowDep, StateDep, UowDep, UserDep, scope
from data_service.entrypoints.openai_schemas import (
    FileDeleted,
    FileList,
    FileObject,
    dataset_id_of,
    file_id_for,
)
from data_service.entrypoints.routes_upload import multipart_form, receive_upload, size_guard
from data_service.service_layer import datasets as dataset_service
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
    openapi_extra=multipart_form(
        required=["file", "purpose"],
        purpose={"type": "string", "enum": [PURPOSE]},
        ftd_job_type={"type": "string", "enum": ["embedding", "classifier", "llm_lora"]},
    ),
)
async def create_file(
    request: Request,
    _guard: Annotated[None, Depends(size_guard)],
    state: StateDep,
    user: UserDep,
) -> Any:
    """Upload a training file (multipart `file`, `purpose=fine-tune`, optional `ftd_job_type`):
    validated and stored as a dataset; answers OpenAI's File object."""
    upload = await receive_upload(
        request,
        state,
        user_id=user.user_id,
        job_type_field="ftd_job_type",
        check_field=_check_field,
        check_complete=_check_complete,
        api="openai",
    )
    assert upload.row is not None
    return JSONResponse(FileObject.of(upload.row).model_dump(mode="json"), status_code=200)


def _check_field(name: str, value: str) -> None:
    if name == "purpose" and value != PURPOSE:
        raise _unsupported_purpose(value)


def _check_complete(fields: dict[str, str]) -> None:
    if "purpose" not in fields:
        raise ApiError(400, "missing_purpose", "Send `purpose` (fine-tune).", {"param": "purpose"})


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
