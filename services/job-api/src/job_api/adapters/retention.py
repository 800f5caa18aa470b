"""Retention: what has outlived its time is deleted in bounded batches."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from job_api.adapters.tables import idempotency_keys, inbox, job_events, jobs


class RetentionRepository:
    """Deletes what has outlived its retention, a bounded batch per call (short transactions,
    no long locks): history of ended jobs, Idempotency-Key records, processed inbox ids."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def prune_history(self, cutoff: datetime, *, batch: int) -> int:
        """Progress rows (with their per-step metrics and log lines) of jobs that ended before
        `cutoff`. Status rows stay: a job's timeline is small and keeps its meaning."""
        e, j = job_events, jobs
        doomed = (
            sa.select(e.c.id)
            .join(j, j.c.id == e.c.job_id)
            .where(
                e.c.created_at < cutoff,
                e.c.kind != "status",
                j.c.status.in_(["completed", "failed", "cancelled"]),
                sa.func.coalesce(j.c.completed_at, j.c.updated_at) < cutoff,
            )
            .limit(batch)
            .scalar_subquery()
        )
        result = await self._conn.execute(sa.delete(e).where(e.c.id.in_(doomed)))
        return int(getattr(result, "rowcount", 0) or 0)

    async def prune_idempotency_keys(self, cutoff: datetime, *, batch: int) -> int:
        t = idempotency_keys
        doomed = (
            sa.select(t.c.user_id, t.c.key).where(t.c.created_at < cutoff).limit(batch).subquery()
        )
        result = await self._conn.execute(
            sa.delete(t).where(
                sa.tuple_(t.c.user_id, t.c.key).in_(sa.select(doomed.c.user_id, doomed.c.key))
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def prune_inbox(self, consumer: str, cutoff: datetime, *, batch: int) -> int:
        t = inbox
        doomed = (
            sa.select(t.c.event_id)
            .where(t.c.consumer == consumer, t.c.processed_at < cutoff)
            .limit(batch)
            .scalar_subquery()
        )
        result = await self._conn.execute(
            sa.delete(t).where(t.c.consumer == consumer, t.c.event_id.in_(doomed))
        )
        return int(getattr(result, "rowcount", 0) or 0)
