"""SQL for enrolled workers: the credential and what their heartbeats say."""

import time
from dataclasses import fields
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.enums import GPUProvider, JobType
from job_api.adapters.tables import workers
from job_api.domain.worker import Worker

_FIELDS = [f.name for f in fields(Worker)]


def worker_from_row(row: sa.Row[Any]) -> Worker:
    values = {k: v for k, v in row._mapping.items() if k in _FIELDS}
    if values["provider"] is not None:
        values["provider"] = GPUProvider(values["provider"])
    if values["job_types"] is not None:
        values["job_types"] = [JobType(t) for t in values["job_types"]]
    return Worker(**values)


def _values(worker: Worker) -> dict[str, Any]:
    values = {f: getattr(worker, f) for f in _FIELDS}
    if values["provider"] is not None:
        values["provider"] = str(values["provider"])
    if values["job_types"] is not None:
        values["job_types"] = [str(t) for t in values["job_types"]]
    return values


class WorkerCache:
    """Workers by id for the claim path, kept a few seconds: a claim needs the worker's key and
    pool, and a read per claim would be a round trip on the hottest path. Revoking in this
    process drops the entry at once; other replicas see a revocation within `ttl`."""

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self._entries: TTLCache[UUID, Worker] = TTLCache(size, ttl, timer=time.monotonic)

    def get(self, worker_id: UUID) -> Worker | None:
        return self._entries.get(worker_id)

    def put(self, worker: Worker) -> None:
        self._entries[worker.id] = worker

    def drop(self, worker_id: UUID) -> None:
        self._entries.pop(worker_id, None)


class WorkerRepository:
    def __init__(self, conn: AsyncConnection, *, cache: WorkerCache | None = None) -> None:
        self._conn = conn
        self._cache = cache

    async def add(self, worker: Worker) -> None:
        await self._conn.execute(sa.insert(workers).values(_values(worker)))

    async def save(self, worker: Worker) -> None:
        values = _values(worker)
        worker_id = values.pop("id")
        await self._conn.execute(sa.update(workers).where(workers.c.id == worker_id).values(values))
        if self._cache is not None:
            self._cache.drop(worker_id)

    async def get(self, worker_id: UUID, *, for_update: bool = False) -> Worker | None:
        stmt = sa.select(workers).where(workers.c.id == worker_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self._conn.execute(stmt)).first()
        return worker_from_row(row) if row is not None else None

    async def authenticating(self, worker_id: UUID) -> Worker | None:
        """The worker as the claim path sees it (cached a few seconds)."""
        if self._cache is not None and (hit := self._cache.get(worker_id)) is not None:
            return hit
        worker = await self.get(worker_id)
        if worker is not None and self._cache is not None:
            self._cache.put(worker)
        return worker

    async def get_many_for_update(self, worker_ids: list[UUID]) -> dict[UUID, Worker]:
        stmt = (
            sa.select(workers)
            .where(workers.c.id.in_(sorted(set(worker_ids))))
            .order_by(workers.c.id)
            .with_for_update()
        )
        return {row.id: worker_from_row(row) for row in (await self._conn.execute(stmt)).all()}

    async def listed(
        self, *, user_id: str | None, pool: str | None = None, include_revoked: bool = False
    ) -> list[Worker]:
        """Workers a user may see (the shared pool and their own; user_id None: all), newest
        first."""
        stmt = sa.select(workers)
        if user_id is not None:
            stmt = stmt.where(sa.or_(workers.c.pool == "shared", workers.c.owner_id == user_id))
        if pool is not None:
            stmt = stmt.where(workers.c.pool == pool)
        if not include_revoked:
            stmt = stmt.where(workers.c.revoked_at.is_(None))
        stmt = stmt.order_by(workers.c.created_at.desc(), workers.c.id.desc())
        return [worker_from_row(r) for r in (await self._conn.execute(stmt)).all()]

    async def seen_since(self, cutoff: datetime) -> list[Worker]:
        """Workers not revoked and heard from since `cutoff` (the presence monitor's view)."""
        stmt = sa.select(workers).where(
            workers.c.revoked_at.is_(None), workers.c.last_seen_at >= cutoff
        )
        return [worker_from_row(r) for r in (await self._conn.execute(stmt)).all()]

    async def revoked_with_broker_user(self) -> list[Worker]:
        stmt = sa.select(workers).where(
            workers.c.revoked_at.is_not(None), workers.c.broker_user.is_not(None)
        )
        return [worker_from_row(r) for r in (await self._conn.execute(stmt)).all()]

    async def private_pools(self) -> list[str]:
        """Every private pool with a worker that is not revoked (their queues must exist)."""
        stmt = (
            sa.select(workers.c.pool)
            .where(workers.c.pool != "shared", workers.c.revoked_at.is_(None))
            .distinct()
        )
        return [pool for (pool,) in (await self._conn.execute(stmt)).all()]

    async def has_private_pool(self, owner_id: str) -> bool:
        """Whether the user has a private worker that is not revoked (one could take a private
        job; its pool's queues exist)."""
        stmt = sa.select(sa.literal(1)).where(
            workers.c.owner_id == owner_id,
            workers.c.pool != "shared",
            workers.c.revoked_at.is_(None),
        )
        return (await self._conn.execute(stmt.limit(1))).first() is not None
