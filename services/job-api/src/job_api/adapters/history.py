"""Status and progress history (job_events); each insert is also pushed (NOTIFY, delivered at
commit) to live streams."""

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from job_api.adapters.event_statements import INSERT_EVENTS, history_params
from job_api.adapters.tables import job_events


def _events_since(*, by_user: bool, by_job: bool) -> sa.Select[Any]:
    e = job_events
    stmt = sa.select(e).where(e.c.id > sa.bindparam("after_id"))
    if by_user:
        stmt = stmt.where(e.c.user_id == sa.bindparam("user_id"))
    if by_job:
        stmt = stmt.where(e.c.job_id == sa.bindparam("job_id"))
    return stmt.order_by(e.c.id).limit(sa.bindparam("limit"))


# Live streams read these on every wake-up: built once, not per call.
_EVENTS_SINCE = {
    (by_user, by_job): _events_since(by_user=by_user, by_job=by_job)
    for by_user in (False, True)
    for by_job in (False, True)
}


def _events_since_jobs() -> sa.Select[Any]:
    e = job_events
    feeds = (
        sa.func.unnest(
            sa.cast(sa.bindparam("job_ids"), pg.ARRAY(pg.UUID(as_uuid=True))),
            sa.cast(sa.bindparam("after_ids"), pg.ARRAY(sa.BigInteger)),
        )
        .table_valued("job_id", "after_id")
        .render_derived()
    )
    rows = (
        sa.select(e)
        .where(e.c.job_id == feeds.c.job_id, e.c.id > feeds.c.after_id)
        .order_by(e.c.id)
        .limit(sa.bindparam("limit"))
        .lateral("rows")
    )
    return sa.select(rows).select_from(feeds).join(rows, sa.true()).order_by(rows.c.id)


_EVENTS_SINCE_JOBS = _events_since_jobs()


class JobEventRepository:
    """Progress history; each insert is also pushed (NOTIFY, delivered at commit) to live streams."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """rows: job_id, user_id, attempt, kind, data."""
        if not rows:
            return
        # Live streams only need the pointer; they read the row itself (NOTIFY payloads are capped).
        await self._conn.execute(INSERT_EVENTS, history_params(rows))

    async def page(
        self, job_id: UUID, *, after_id: int | None, limit: int, kinds: Sequence[str] | None = None
    ) -> list[sa.Row[Any]]:
        stmt = sa.select(job_events).where(job_events.c.job_id == job_id)
        if after_id is not None:
            stmt = stmt.where(job_events.c.id > after_id)
        if kinds:
            stmt = stmt.where(job_events.c.kind.in_(list(kinds)))
        stmt = stmt.order_by(job_events.c.id).limit(limit)
        return list((await self._conn.execute(stmt)).all())

    async def since(
        self, *, user_id: str | None, job_id: UUID | None, after_id: int, limit: int
    ) -> list[sa.Row[Any]]:
        stmt = _EVENTS_SINCE[(user_id is not None, job_id is not None)]
        params = {"after_id": after_id, "user_id": user_id, "job_id": job_id, "limit": limit}
        return list((await self._conn.execute(stmt, params)).all())

    async def since_jobs(self, cursors: Mapping[UUID, int], *, limit: int) -> list[sa.Row[Any]]:
        """For each job, up to `limit` rows after its cursor (oldest first per job): the live
        feeds of many jobs caught up in one query."""
        if not cursors:
            return []
        params = {"job_ids": list(cursors), "after_ids": list(cursors.values()), "limit": limit}
        return list((await self._conn.execute(_EVENTS_SINCE_JOBS, params)).all())

    async def latest_id(self, *, user_id: str | None, job_id: UUID | None) -> int:
        stmt = sa.select(sa.func.coalesce(sa.func.max(job_events.c.id), 0))
        if user_id is not None:
            stmt = stmt.where(job_events.c.user_id == user_id)
        if job_id is not None:
            stmt = stmt.where(job_events.c.job_id == job_id)
        return int((await self._conn.execute(stmt)).scalar_one())
