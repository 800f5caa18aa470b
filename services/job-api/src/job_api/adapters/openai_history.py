"""A job's history newest first, as OpenAI's job events are listed (the history repository reads
it oldest first, for live streams)."""

from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from job_api.adapters.tables import job_events


async def newest_first(
    conn: AsyncConnection, job_id: UUID, *, before_id: int | None, limit: int
) -> list[sa.Row[Any]]:
    """Up to `limit` history rows of the job, newest first, older than `before_id` if given."""
    e = job_events
    stmt = sa.select(e).where(e.c.job_id == job_id)
    if before_id is not None:
        stmt = stmt.where(e.c.id < before_id)
    stmt = stmt.order_by(e.c.id.desc()).limit(limit)
    return list((await conn.execute(stmt)).all())
