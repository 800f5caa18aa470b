"""Bodies of the OpenAI-compatible file routes: OpenAI's `File` object, its list and deletion
(the shapes of the `openai` package's FileObject, SyncCursorPage[FileObject] and FileDeleted)."""

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from data_service.adapters.repository import DatasetRow

FILE_ID_PREFIX = "file-"


def file_id_for(dataset_id: UUID) -> str:
    return f"{FILE_ID_PREFIX}{dataset_id}"


def dataset_id_of(value: str) -> UUID | None:
    """The dataset a file id names; None when it is not `file-<uuid>`."""
    if not value.startswith(FILE_ID_PREFIX):
        return None
    try:
        return UUID(value.removeprefix(FILE_ID_PREFIX))
    except ValueError:
        return None


class FileObject(BaseModel):
    id: str = Field(description="`file-<dataset id>`; also a job's `training_file`.")
    object: Literal["file"] = "file"
    bytes: int = Field(description="The file's size in bytes.")
    created_at: int = Field(description="Unix time (seconds) of the upload.")
    filename: str
    purpose: Literal["fine-tune"] = "fine-tune"
    status: Literal["uploaded", "processed", "error"] = Field(
        description="Always `processed`: a file is stored only once it has been validated."
    )
    status_details: str | None = None
    expires_at: int | None = None
    ftd_job_types: list[str] = Field(
        description="The job types this file trains (embedding, classifier, llm_lora)."
    )
    ftd_rows: int = Field(description="Rows (records) in the file.")

    @classmethod
    def of(cls, row: DatasetRow) -> "FileObject":
        return cls(
            id=file_id_for(row.id),
            bytes=row.size_bytes,
            created_at=int(row.created_at.timestamp()),
            filename=row.filename,
            status="processed",
            ftd_job_types=row.job_types,
            ftd_rows=row.rows,
        )


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool
