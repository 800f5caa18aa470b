"""The reads over many jobs: users' searches, and what the watchdog and the presence monitor
look for (expired leases, undelivered offers, retries due, pending groups)."""

import dataclasses
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.catalogue import HardwareClass
from contracts.enums import GPUProvider, JobPhase, JobStatus, JobType, WorkerPool
from contracts.routing import SHARED_POOL
from job_api.adapters.job_statements import job_from_row
from job_api.adapters.tables import jobs
from job_api.domain.job import Job


@dataclasses.dataclass(frozen=True)
class JobFilter:
    user_id: str | None
    status: JobStatus | None = None
    job_type: JobType | None = None
    project_id: str | None = None
    gpu_provider: GPUProvider | None = None
    # Only jobs a worker of this pool may take (SHARED_POOL or a private pool key).
    pool: str | None = None


# Pending jobs that wait for the same workers: (worker_pool, owner_pool, job_type, provider).
PendingGroup = tuple[WorkerPool, str | None, JobType, GPUProvider]


class JobQueries:
    """The many-job reads of JobRepository; the locking ones record what `_locked` records."""

    _conn: AsyncConnection

    def _locked(self, row: sa.Row[Any]) -> Job:
        raise NotImplementedError

    async def search(
        self,
        flt: JobFilter,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        oldest_first: bool = False,
    ) -> list[Job]:
        stmt = sa.select(jobs)
        if flt.user_id is not None:
            stmt = stmt.where(jobs.c.user_id == flt.user_id)
        if flt.status is not None:
            stmt = stmt.where(jobs.c.status == str(flt.status))
        if flt.job_type is not None:
            stmt = stmt.where(jobs.c.job_type == str(flt.job_type))
        if flt.project_id is not None:
            stmt = stmt.where(jobs.c.project_id == flt.project_id)
        if flt.gpu_provider is not None:
            stmt = stmt.where(jobs.c.gpu_provider == str(flt.gpu_provider))
        if flt.pool == SHARED_POOL:
            stmt = stmt.where(jobs.c.worker_pool != str(WorkerPool.PRIVATE))
        elif flt.pool is not None:
            stmt = stmt.where(
                jobs.c.worker_pool != str(WorkerPool.SHARED), jobs.c.owner_pool == flt.pool
            )
        if oldest_first:
            return [
                job_from_row(r)
                for r in (
                    await self._conn.execute(
                        stmt.order_by(jobs.c.created_at, jobs.c.id).limit(limit)
                    )
                ).all()
            ]
        if after is not None:
            stmt = stmt.where(sa.tuple_(jobs.c.created_at, jobs.c.id) < sa.tuple_(*after))
        stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        return [job_from_row(r) for r in (await self._conn.execute(stmt)).all()]

    async def expired_leases(self, now: datetime, *, limit: int = 100) -> list[Job]:
        stmt = (
            sa.select(jobs)
            .where(jobs.c.status == "running", jobs.c.lease_expires_at < now)
            .order_by(jobs.c.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [self._locked(r) for r in (await self._conn.execute(stmt)).all()]

    async def undispatched_since(self, cutoff: datetime, *, limit: int = 100) -> list[Job]:
        """Pending jobs whose latest work-queue message is older than `cutoff`."""
        stmt = (
            sa.select(jobs)
            .where(
                jobs.c.status == "pending",
                jobs.c.dispatched_at < cutoff,
                # One waiting out its back-off is offered when that ends (retries_due).
                jobs.c.retry_at.is_(None),
            )
            .order_by(jobs.c.dispatched_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [job_from_row(r) for r in (await self._conn.execute(stmt)).all()]

    async def pending_phase_counts(
        self,
    ) -> dict[tuple[PendingGroup, HardwareClass], dict[JobPhase, int]]:
        """How many pending jobs each group (the workers they wait for) has of each hardware class
        in each phase: one aggregate over the pending index, so the presence monitor loads no job
        unless one needs its phase changed."""
        group = (
            jobs.c.worker_pool,
            jobs.c.owner_pool,
            jobs.c.job_type,
            jobs.c.gpu_provider,
            jobs.c.hardware_class,
        )
        stmt = (
            sa.select(*group, jobs.c.phase, sa.func.count())
            .where(jobs.c.status == "pending")
            .group_by(*group, jobs.c.phase)
        )
        counts: dict[tuple[PendingGroup, HardwareClass], dict[JobPhase, int]] = {}
        for pool, owner, t, p, c, phase, n in (await self._conn.execute(stmt)).all():
            key = ((WorkerPool(pool), owner, JobType(t), GPUProvider(p)), HardwareClass(c))
            counts.setdefault(key, {})[JobPhase(phase)] = int(n)
        return counts

    async def pending_in_group(
        self, group: PendingGroup, hardware_class: HardwareClass | None = None
    ) -> list[Job]:
        """The pending jobs of `group` (of `hardware_class`; None: of any class), locked."""
        pool, owner, job_type, provider = group
        classes = [] if hardware_class is None else [jobs.c.hardware_class == str(hardware_class)]
        stmt = (
            sa.select(jobs)
            .where(
                jobs.c.status == "pending",
                jobs.c.worker_pool == str(pool),
                jobs.c.owner_pool.is_(None) if owner is None else jobs.c.owner_pool == owner,
                jobs.c.job_type == str(job_type),
                jobs.c.gpu_provider == str(provider),
                *classes,
            )
            .with_for_update(skip_locked=True)
        )
        return [job_from_row(r) for r in (await self._conn.execute(stmt)).all()]

    async def retries_due(self, now: datetime, *, limit: int = 100) -> list[Job]:
        """Pending jobs whose back-off after a retryable failure is over: to be offered again."""
        stmt = (
            sa.select(jobs)
            .where(jobs.c.status == "pending", jobs.c.retry_at <= now)
            .order_by(jobs.c.retry_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [job_from_row(r) for r in (await self._conn.execute(stmt)).all()]

    async def running_held_by(self, worker_id: str) -> list[Job]:
        stmt = (
            sa.select(jobs)
            .where(jobs.c.status == "running", jobs.c.worker_id == worker_id)
            .with_for_update()
        )
        return [self._locked(r) for r in (await self._conn.execute(stmt)).all()]
