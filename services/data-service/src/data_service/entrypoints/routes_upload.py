"""POST /api/finetune/upload: the file is streamed, validated and stored in one pass; the answer
comes once it is durable and its row committed."""

import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from contracts.enums import JobType
from data_service.adapters.repository import DatasetRow
from data_service.entrypoints.deps import AppState, StateDep, UserDep
from data_service.entrypoints.metrics import UPLOADED_BYTES, UPLOADS
from data_service.entrypoints.multipart import Event, PartData, PartEnd, PartStart, multipart_events
from data_service.entrypoints.schemas import DatasetResponse, DryRunResponse
from data_service.service_layer.ingest import Ingested, TooLarge
from data_service.service_layer.uploads import InvalidDataset, Upload
from servicekit.errors import ApiError
from servicekit.responses import Data, error_responses

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/finetune", tags=["datasets"])

# Room for the multipart framing around the file in a Content-Length check.
MULTIPART_OVERHEAD = 64 * 1024
MAX_FILENAME = 255


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, "payload_too_large", f"The file is larger than the limit of {limit:,} bytes."
    )


async def size_guard(request: Request, state: StateDep) -> None:
    """Refuse a declared oversize body before any other work (auth included)."""
    limit = state.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise too_large(limit)


def safe_filename(name: str | None) -> str:
    """The user's filename, kept for display only; refused if it tries to be a path."""
    if name is None or not name.strip():
        raise ApiError(422, "invalid_filename", "The file part needs a filename.")
    bad = (
        "/" in name
        or "\\" in name
        or name in (".", "..")
        or len(name) > MAX_FILENAME
        or any(unicodedata.category(c).startswith("C") for c in name)
    )
    if bad:
        raise ApiError(
            422,
            "invalid_filename",
            "The filename must be a plain name: no path separators, no control characters, "
            f"at most {MAX_FILENAME} characters.",
        )
    return name


async def _file_chunks(events: AsyncIterator[Event]) -> AsyncIterator[bytes | memoryview]:
    async for event in events:
        if isinstance(event, PartData):
            yield event.data
        elif isinstance(event, PartEnd):
            return
    raise ApiError(400, "malformed_multipart", "The file part is not terminated.")


async def _field_value(events: AsyncIterator[Event], name: str) -> str:
    value = bytearray()
    async for event in events:
        if isinstance(event, PartData):
            value += event.data
            if len(value) > 1024:
                raise ApiError(422, "field_too_long", f"The form field {name!r} is too long.")
        elif isinstance(event, PartEnd):
            break
    return value.decode("utf-8", "replace").strip()


def _job_type(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value not in {str(t) for t in JobType}:
        raise ApiError(
            422,
            "invalid_job_type",
            f"job_type must be one of {', '.join(str(t) for t in JobType)}.",
        )
    return value


def multipart_form(*, required: list[str], **fields: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of an upload: a multipart form with a `file` and `fields`."""
    properties = {"file": {"type": "string", "format": "binary"}, **fields}
    schema = {"type": "object", "required": required, "properties": properties}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


@router.post(
    "/upload",
    status_code=201,
    responses={**error_responses(400, 401, 413, 415, 422), 200: {"model": Data[DryRunResponse]}},
    openapi_extra=multipart_form(
        required=["file"], job_type={"type": "string", "enum": [str(t) for t in JobType]}
    ),
)
async def upload(
    request: Request,
    _guard: Annotated[None, Depends(size_guard)],
    state: StateDep,
    user: UserDep,
    dry_run: Annotated[bool, Query(description="Validate and report; store nothing.")] = False,
    job_type: Annotated[JobType | None, Query(description="Expected job type.")] = None,
) -> Any:
    """Upload a training file (multipart field `file`, optional `job_type`); answers the dataset
    and the `training_data_url` to create a job with."""
    upload = await receive_upload(
        request,
        state,
        user_id=user.user_id,
        job_type_field="job_type",
        expected=str(job_type) if job_type else None,
        dry_run=dry_run,
    )
    if upload.row is None:
        return _dry_run_answer(upload.result, upload.file.filename)
    return JSONResponse(
        {"data": DatasetResponse.of(upload.row).model_dump(mode="json")}, status_code=201
    )


@dataclass(frozen=True)
class Received:
    """An upload read to its end: its file and, unless a dry run, the committed dataset row."""

    file: Upload
    result: Ingested
    row: DatasetRow | None
    fields: dict[str, str]


def _accept(name: str, value: str) -> None:
    pass


def _complete(fields: dict[str, str]) -> None:
    pass


async def receive_upload(
    request: Request,
    state: AppState,
    *,
    user_id: str,
    job_type_field: str,
    expected: str | None = None,
    dry_run: bool = False,
    check_field: Callable[[str, str], None] = _accept,
    check_complete: Callable[[dict[str, str]], None] = _complete,
    api: str = "platform",
) -> Received:
    """Read an upload's multipart form: its `file` part is streamed into storage while it is
    validated, `job_type_field` names the job type it must train (else `expected`), and every
    other field goes through `check_field(name, value)` as it arrives; `check_complete(fields)`
    runs once the form is read, before the dataset is recorded (unless `dry_run`)."""
    settings = state.settings
    file = Upload(
        storage=state.storage,
        limits=settings.limits,
        max_bytes=settings.max_upload_bytes,
        dry_run=dry_run,
    )
    events = multipart_events(request.headers.get("content-type"), request.stream())
    fields: dict[str, str] = {}
    row: DatasetRow | None = None
    try:
        async for event in events:
            if not isinstance(event, PartStart):
                continue
            if event.name == "file":
                filename = safe_filename(event.filename)
                await file.take_file(_file_chunks(events), filename=filename, expected=expected)
                continue
            value = await _field_value(events, event.name)
            if event.name == job_type_field:
                expected = _job_type(value) or expected
            else:
                check_field(event.name, value)
            fields[event.name] = value
        file.taken(expected=None, job_type_field=job_type_field)
        check_complete(fields)
        result = file.taken(expected=expected, job_type_field=job_type_field)
        if dry_run:
            UPLOADS.labels("dry_run").inc()
            return Received(file, result, None, fields)
        row = await file.store(state.units, user_id=user_id)
    except InvalidDataset:
        UPLOADS.labels("invalid").inc()
        await file.forget()
        raise
    except TooLarge as exc:
        UPLOADS.labels("too_large").inc()
        await file.forget()
        raise too_large(exc.limit) from None
    except ClientDisconnect:
        log.info("upload.client_disconnected", dataset_id=str(file.dataset_id))
        await file.forget()
        raise ApiError(
            400, "client_disconnected", "The upload ended before its body did."
        ) from None
    except BaseException:
        await file.forget()
        raise
    # Counted after the commit above (a failed commit raised before this point).
    UPLOADS.labels("stored").inc()
    UPLOADED_BYTES.inc(result.size_bytes)
    log.info(
        "upload.stored",
        dataset_id=str(file.dataset_id),
        size_bytes=result.size_bytes,
        rows=result.report.rows,
        format=result.report.format,
        api=api,
    )
    return Received(file, result, row, fields)


def _dry_run_answer(result: Ingested, filename: str) -> JSONResponse:
    report = result.report
    body = DryRunResponse(
        filename=filename,
        format=report.format,
        shape=report.shape,
        job_type=report.job_types[0] if report.job_types else None,
        job_types=report.job_types,
        rows=report.rows,
        columns=report.columns,
        size_bytes=result.size_bytes,
        sha256=result.sha256,
        stats=report.stats,
        validation=report.as_dict(),
    )
    return JSONResponse({"data": body.model_dump(mode="json")}, status_code=200)
