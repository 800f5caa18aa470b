"""All SQL of data-service, on a Core connection owned by the caller's unit of work."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from data_service.adapters.tables import dataset_jobs, datasets


@dataclass(frozen=True)
class DatasetRow:
    id: UUID
    user_id: str
    filename: str
    storage_key: str
    format: str
    shape: str
    job_types: list[str]
    rows: int
    columns: list[str]
    size_bytes: int
    sha256: str
    stats: dict[str, Any]
    report: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> "DatasetRow":
        m = row._mapping
        return cls(**{k: m[k] for k in cls.__dataclass_fields__})


class DatasetRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, row: DatasetRow) -> None:
        await self.conn.execute(sa.insert(datasets).values(**row.__dict__))

    async def get(self, dataset_id: UUID, *, user_id: str | None) -> DatasetRow | None:
        stmt = sa.select(datasets).where(datasets.c.id == dataset_id)
        if user_id is not None:
            stmt = stmt.where(datasets.c.user_id == user_id)
        row = (await self.conn.execute(stmt)).first()
        return DatasetRow.of(row) if row else None

    async def page(
        self, *, user_id: str | None, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[DatasetRow]:
        t = datasets
        stmt = sa.select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        if user_id is not None:
            stmt = stmt.where(t.c.user_id == user_id)
        if after is not None:
            stmt = stmt.where(sa.tuple_(t.c.created_at, t.c.id) < sa.tuple_(*after))
        return [DatasetRow.of(r) for r in (await self.conn.execute(stmt)).all()]

    async def delete(self, dataset_id: UUID) -> DatasetRow | None:
        row = (
            await self.conn.execute(
                sa.delete(datasets).where(datasets.c.id == dataset_id).returning(datasets)
            )
        ).first()
        return DatasetRow.of(row) if row else None

    async def lock(self, dataset_id: UUID) -> bool:
        """Lock the dataset row (a delete and a job.created for it must not interleave)."""
        found = await self.conn.execute(
            sa.select(datasets.c.id).where(datasets.c.id == dataset_id).with_for_update()
        )
        return found.first() is not None


@dataclass(frozen=True)
class JobUse:
    job_id: UUID
    dataset_id: UUID | None
    attempt: int
    status: str
    ended: bool


class JobUseRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def record(
        self,
        job_id: UUID,
        *,
        dataset_id: UUID | None,
        attempt: int,
        status: str,
        ended: bool,
    ) -> JobUse:
        """Merge what an event says: attempts only grow, an ended job stays ended."""
        t = dataset_jobs
        ins = pg.insert(t).values(
            job_id=job_id, dataset_id=dataset_id, attempt=attempt, status=status, ended=ended
        )
        newer = ins.excluded.attempt >= t.c.attempt
        stmt = ins.on_conflict_do_update(
            index_elements=[t.c.job_id],
            set_={
                "dataset_id": sa.func.coalesce(t.c.dataset_id, ins.excluded.dataset_id),
                "attempt": sa.func.greatest(t.c.attempt, ins.excluded.attempt),
                "status": sa.case(
                    (t.c.ended, t.c.status), (newer, ins.excluded.status), else_=t.c.status
                ),
                "ended": t.c.ended | ins.excluded.ended,
                "updated_at": sa.func.now(),
            },
        ).returning(t)
        row = (await self.conn.execute(stmt)).one()
        return JobUse(row.job_id, row.dataset_id, row.attempt, row.status, row.ended)

    async def get(self, job_id: UUID) -> JobUse | None:
        t = dataset_jobs
        row = (await self.conn.execute(sa.select(t).where(t.c.job_id == job_id))).first()
        return (
            JobUse(row.job_id, row.dataset_id, row.attempt, row.status, row.ended) if row else None
        )

    async def active_for(self, dataset_id: UUID) -> list[UUID]:
        t = dataset_jobs
        rows = await self.conn.execute(
            sa.select(t.c.job_id).where(t.c.dataset_id == dataset_id, t.c.ended.is_(False))
        )
        return list(rows.scalars().all())
