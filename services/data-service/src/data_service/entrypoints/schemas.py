"""Response bodies of data-service's routes."""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from contracts.routing import dataset_ref
from data_service.adapters.repository import DatasetRow


class DatasetResponse(BaseModel):
    id: UUID
    filename: str
    format: str
    shape: str
    job_type: str = Field(description="The job type this file trains.")
    job_types: list[str]
    rows: int
    columns: list[str]
    size_bytes: int
    sha256: str
    stats: dict[str, Any]
    validation: dict[str, Any] = Field(description="The validation report (warnings included).")
    training_data_url: str = Field(description="Pass as a job's training_data_url.")
    created_at: datetime

    @classmethod
    def of(cls, row: DatasetRow) -> "DatasetResponse":
        return cls(
            id=row.id,
            filename=row.filename,
            format=row.format,
            shape=row.shape,
            job_type=row.job_types[0] if row.job_types else "",
            job_types=row.job_types,
            rows=row.rows,
            columns=row.columns,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            stats=row.stats,
            validation=row.report,
            training_data_url=dataset_ref(row.id),
            created_at=row.created_at,
        )


class DryRunResponse(BaseModel):
    dry_run: bool = True
    filename: str
    format: str | None
    shape: str | None
    job_type: str | None
    job_types: list[str]
    rows: int
    columns: list[str]
    size_bytes: int
    sha256: str
    stats: dict[str, Any]
    validation: dict[str, Any]


class PreviewResponse(BaseModel):
    id: UUID
    format: str
    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool = Field(description="True when the file has more rows than shown.")
