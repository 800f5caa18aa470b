"""One upload, from its file part to its committed row: the file is streamed into storage while it
is validated (service_layer.ingest), then recorded as a dataset (service_layer.datasets). Both
upload routes (`POST /api/finetune/upload`, `POST /v1/files`) go through it; what they differ in
is their form's fields, which they read themselves.

What refuses an upload is an `UploadRefused` (422; the OpenAI route answers it with 400). Whoever
drives an `Upload` calls `forget()` when anything fails after the file part: the stored file must
not outlive a failed upload.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from data_service.adapters.repository import DatasetRow
from data_service.adapters.storage import NullWriter, ObjectWriter, Storage, dataset_key
from data_service.service_layer import datasets as dataset_service
from data_service.service_layer.ingest import Ingested, ingest
from data_service.service_layer.unit_of_work import UnitOfWork
from data_service.service_layer.validation.limits import Limits
from data_service.service_layer.validation.pipeline import Validation
from servicekit.domain import DomainError
from servicekit.uow import Units

log = structlog.get_logger(__name__)


class UploadRefused(DomainError):
    status = 422

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class InvalidDataset(UploadRefused):
    """The file failed validation; `details` is the validation report."""

    def __init__(self, result: Ingested) -> None:
        report = result.report
        super().__init__("invalid_dataset", report.problems.summary(), report.as_dict())


@dataclass
class Upload:
    """One upload's file (at most one per upload) and where it is stored; with `dry_run` the file
    is validated and stored nowhere."""

    storage: Storage
    limits: Limits
    max_bytes: int
    dry_run: bool = False
    dataset_id: uuid.UUID = field(default_factory=uuid.uuid4)
    filename: str = ""
    result: Ingested | None = None

    @property
    def key(self) -> str:
        return dataset_key(self.dataset_id)

    async def take_file(
        self, chunks: AsyncIterator[bytes | memoryview], *, filename: str, expected: str | None
    ) -> Ingested:
        """Stream the file part into storage while validating it as `expected`'s (a job type,
        or None: any). Raises TooLarge, InvalidDataset, or UploadRefused for a second file."""
        if self.result is not None:
            raise UploadRefused("too_many_files", "Send one file per upload.")
        self.filename = filename
        writer: ObjectWriter = (
            NullWriter() if self.dry_run else await asyncio.to_thread(self.storage.writer, self.key)
        )
        self.result = await ingest(
            chunks,
            writer=writer,
            validation=Validation(self.limits, expected),
            max_bytes=self.max_bytes,
        )
        if not self.result.report.valid:
            raise InvalidDataset(self.result)
        return self.result

    def taken(self, *, expected: str | None, job_type_field: str) -> Ingested:
        """The file, once the whole form is read: refused when there was none, or when it trains
        no `expected` job (the form's `job_type_field` asked for one)."""
        result = self.result
        if result is None:
            raise UploadRefused("missing_file", "The multipart body has no `file` part.")
        if expected is not None and expected not in result.report.job_types:
            raise UploadRefused(
                "job_type_mismatch",
                f"The file has the {result.report.shape} shape, which trains "
                f"{', '.join(result.report.job_types)} jobs, not {expected}.",
                {"param": job_type_field},
            )
        return result

    async def store(self, units: Units[UnitOfWork], *, user_id: str) -> DatasetRow:
        """Record the taken file as the user's dataset (and announce it), committed."""
        result = self.taken(expected=None, job_type_field="")
        async with units.writing() as uow:
            return await dataset_service.record_upload(
                uow,
                dataset_id=self.dataset_id,
                user_id=user_id,
                filename=self.filename,
                storage_key=self.key,
                report=result.report,
                size_bytes=result.size_bytes,
                sha256=result.sha256,
            )

    async def forget(self) -> None:
        """The upload failed after its file was stored (a later part, the commit): remove it."""
        if self.result is not None and self.result.stored and not self.dry_run:
            try:
                await asyncio.to_thread(self.storage.delete, self.key)
            except Exception:
                log.exception("upload.cleanup_failed", key=self.key)
