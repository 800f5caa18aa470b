"""POST /api/finetune/upload: the file is streamed, validated and stored in one pass; the answer
comes once it is durable and its row committed."""

import asyncio
import unicodedata
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from contracts.enums import JobType
from data_service.adapters.storage import NullWriter, ObjectWriter, dataset_key
from data_service.entrypoints.deps import AppState, StateDep, UserDep
from data_service.entrypoints.metrics import UPLOADED_BYTES, UPLOADS
from data_service.entrypoints.multipart import Event, PartData, PartEnd, PartStart, multipart_events
from data_service.entrypoints.schemas import DatasetResponse, DryRunResponse
from data_service.service_layer import datasets as dataset_service
from data_service.service_layer.ingest import Ingested, TooLarge, ingest
from data_service.service_layer.validation.pipeline import Validation
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


def _invalid(result: Ingested) -> ApiError:
    report = result.report
    return ApiError(422, "invalid_dataset", report.problems.summary(), report.as_dict())


@router.post(
    "/upload",
    status_code=201,
    responses={**error_responses(400, 401, 413, 415, 422), 200: {"model": Data[DryRunResponse]}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "job_type": {"type": "string", "enum": [str(t) for t in JobType]},
                        },
                    }
                }
            },
        }
    },
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
    settings = state.settings
    expected: str | None = str(job_type) if job_type else None
    events = multipart_events(request.headers.get("content-type"), request.stream())
    result: Ingested | None = None
    filename = ""
    dataset_id = uuid.uuid4()
    key = dataset_key(dataset_id)
    try:
        async for event in events:
            if not isinstance(event, PartStart):
                continue
            if event.name == "job_type":
                expected = _job_type(await _field_value(events, "job_type")) or expected
                continue
            if event.name != "file":
                await _field_value(events, event.name)
                continue
            if result is not None:
                raise ApiError(422, "too_many_files", "Send one file per upload.")
            filename = safe_filename(event.filename)
            writer: ObjectWriter = (
                NullWriter() if dry_run else await asyncio.to_thread(state.storage.writer, key)
            )
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
            raise ApiError(422, "missing_file", "The multipart body has no `file` part.")
        if expected is not None and expected not in result.report.job_types:
            raise ApiError(
                422,
                "job_type_mismatch",
                f"The file has the {result.report.shape} shape, which trains "
                f"{', '.join(result.report.job_types)} jobs, not {expected}.",
            )
        if dry_run:
            UPLOADS.labels("dry_run").inc()
            return _dry_run_answer(result, filename)
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
        raise too_large(exc.limit) from None
    except ClientDisconnect:
        log.info("upload.client_disconnected", dataset_id=str(dataset_id))
        await _forget(state, result, key, dry_run)
        return Response(status_code=400)
    except BaseException:
        await _forget(state, result, key, dry_run)
        raise
    # Counted after the commit above (a failed commit raised before this point).
    UPLOADS.labels("stored").inc()
    UPLOADED_BYTES.inc(result.size_bytes)
    log.info(
        "upload.stored",
        dataset_id=str(dataset_id),
        size_bytes=result.size_bytes,
        rows=result.report.rows,
        format=result.report.format,
    )
    return JSONResponse({"data": DatasetResponse.of(row).model_dump(mode="json")}, status_code=201)


async def _forget(state: AppState, result: Ingested | None, key: str, dry_run: bool) -> None:
    """The upload failed after its file was stored (a later part, the commit): remove it."""
    if result is not None and result.stored and not dry_run:
        try:
            await asyncio.to_thread(state.storage.delete, key)
        except Exception:
            log.exception("upload.cleanup_failed", key=key)


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
