"""job-api's projection of data-service's datasets (from its events): what a job may name."""

import dataclasses
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from job_api.adapters.jobs import NotOptimistic
from job_api.adapters.tables import known_datasets


@dataclasses.dataclass(frozen=True)
class KnownDataset:
    dataset_id: UUID
    user_id: str
    job_types: list[str]
    deleted: bool
    sha256: str | None = None
    size_bytes: int | None = None
    format: str | None = None
    rows: int = 0
    estimated_tokens: int | None = None


class DatasetRepository:
    def __init__(self, conn: AsyncConnection, *, read_only: bool = False) -> None:
        self._conn = conn
        self._read_only = read_only

    def _write(self) -> None:
        if self._read_only:
            raise NotOptimistic("optimistic unit of work: datasets are read-only")

    async def upsert(
        self,
        *,
        dataset_id: UUID,
        user_id: str,
        job_types: list[str],
        filename: str,
        rows: int,
        sha256: str | None = None,
        size_bytes: int | None = None,
        format: str | None = None,
        estimated_tokens: int | None = None,
    ) -> None:
        self._write()
        file_facts = {
            "sha256": sha256,
            "size_bytes": size_bytes,
            "format": format,
            "estimated_tokens": estimated_tokens,
        }
        stmt = pg.insert(known_datasets).values(
            dataset_id=dataset_id,
            user_id=user_id,
            job_types=job_types,
            filename=filename,
            rows=rows,
            **file_facts,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[known_datasets.c.dataset_id],
            set_={
                "job_types": job_types,
                "filename": filename,
                "rows": rows,
                **file_facts,
                "updated_at": sa.func.now(),
            },
            where=known_datasets.c.deleted.is_(False),
        )
        await self._conn.execute(stmt)

    async def mark_deleted(self, dataset_id: UUID, user_id: str) -> None:
        self._write()
        stmt = pg.insert(known_datasets).values(
            dataset_id=dataset_id, user_id=user_id, job_types=[], filename="", rows=0, deleted=True
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[known_datasets.c.dataset_id],
            set_={"deleted": True, "updated_at": sa.func.now()},
        )
        await self._conn.execute(stmt)

    async def get(self, dataset_id: UUID) -> KnownDataset | None:
        t = known_datasets
        row = (
            await self._conn.execute(
                sa.select(
                    t.c.dataset_id,
                    t.c.user_id,
                    t.c.job_types,
                    t.c.deleted,
                    t.c.sha256,
                    t.c.size_bytes,
                    t.c.format,
                    t.c.rows,
                    t.c.estimated_tokens,
                ).where(t.c.dataset_id == dataset_id)
            )
        ).first()
        if row is None:
            return None
        return KnownDataset(
            row.dataset_id,
            row.user_id,
            list(row.job_types),
            row.deleted,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            format=row.format,
            rows=row.rows,
            estimated_tokens=row.estimated_tokens,
        )
