"""The jobs: one job read, locked, saved, inserted with its first events, or saved with its
events; the searches and the watchdog's reads are JobQueries (job_queries.py)."""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from job_api.adapters import fast_path as fast
from job_api.adapters.event_statements import OUTBOX, STAGE_EVENTS, history_params
from job_api.adapters.fast_path import FreshJob, FreshJobs, Inserted
from job_api.adapters.job_queries import JobQueries
from job_api.adapters.job_statements import (
    GET_JOB,
    UPDATE_JOB,
    job_from_mapping,
    job_from_row,
    job_values,
    update_params,
)
from job_api.adapters.tables import jobs
from job_api.domain.job import Job


class NotOptimistic(RuntimeError):
    """A write optimistic mode cannot check (not a checked save, or not the first write): a bug
    in the handler, which must ask `optimistic` before such a write. Nothing was written by it."""


class JobRepository(JobQueries):
    """With `optimistic`, on a connection without a transaction block (each statement commits
    on its own): a read "for update" takes no lock but remembers the row's version, and the one
    write allowed, a save of that job, applies only if the row is still that version (else it
    writes nothing and says so). Either way the save lands only on the row as it was read, as
    under a lock held since the read. Any other write is refused (NotOptimistic) before it runs."""

    def __init__(
        self, conn: AsyncConnection, *, optimistic: bool = False, fresh: FreshJobs | None = None
    ) -> None:
        self._conn = conn
        self._optimistic = optimistic
        self._fresh = fresh
        self._wrote = False
        # The jobs this transaction read under lock (FOR UPDATE); in optimistic mode, the
        # version of each job read "for update".
        self._locked_ids: set[UUID] = set()
        self._versions: dict[UUID, str] = {}

    def _plain_write(self) -> None:
        """Called before a write (or a locking read) that optimistic mode cannot check."""
        if self._optimistic:
            self._nothing_written_yet()
            raise NotOptimistic("optimistic unit of work: only one checked save")

    def _nothing_written_yet(self) -> None:
        """After the checked save has committed, the work cannot be run again in a transaction
        (it would apply twice): a handler that writes more is a bug, not a retry."""
        if self._wrote:
            raise NotOptimistic("optimistic unit of work: a second write after a committed one")

    def _locked(self, row: sa.Row[Any]) -> Job:
        self._locked_ids.add(row.id)
        return job_from_row(row)

    async def add_with_events(
        self, job: Job, outbox_rows: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]]
    ) -> Inserted:
        """Insert a new job with its first outbox rows (`OUTBOX.rows`, numbered by the outbox)
        and history rows, in one round trip."""
        self._plain_write()
        params: dict[str, Any] = {f"job_{k}": v for k, v in job_values(job).items()}
        params.update(OUTBOX.params(outbox_rows))
        params.update(history_params(history))
        row = await fast.INSERT_JOB_WITH_EVENTS.write_returning(self._conn, params)
        return Inserted(
            outbox_ids=list(row["outbox_ids"] or []),
            outbox_bodies=[bytes(b) for b in row["outbox_bodies"] or []],
            fresh=FreshJob(job=job, row_version=row["row_version"]),
        )

    async def save_with_events(
        self,
        job: Job,
        outbox_rows: Sequence[dict[str, Any]],
        history: Sequence[dict[str, Any]],
    ) -> bool:
        """Save a job read under lock in this transaction (in optimistic mode: read "for
        update"), and stage the outbox and history rows: one round trip. False when, in
        optimistic mode, the row changed since it was read: then nothing was written."""
        if job.id not in self._locked_ids and job.id not in self._versions:
            raise RuntimeError(f"job {job.id} was not read under lock in this transaction")
        params: dict[str, Any] = {f"job_{k}": v for k, v in job_values(job).items() if k != "id"}
        params["job_pk"] = job.id
        params.update(OUTBOX.params(outbox_rows))
        params.update(history_params(history))
        if not self._optimistic:
            await fast.SAVE_JOB_WITH_EVENTS.execute(self._conn, params)
            return True
        self._nothing_written_yet()
        params["row_version"] = self._versions[job.id]
        self._wrote = True  # from here on, whatever happens, no second write in this mode
        applied = await fast.SAVE_JOB_WITH_EVENTS_IF_UNCHANGED.fetchrow(self._conn, params)
        return applied is not None

    async def stage_events(
        self, outbox_rows: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]]
    ) -> None:
        """Outbox rows (`OUTBOX.rows`) and history rows in one round trip."""
        self._plain_write()
        if not outbox_rows and not history:
            return
        params = {**OUTBOX.params(outbox_rows), **history_params(history)}
        await self._conn.execute(STAGE_EVENTS, params)

    async def save(self, job: Job) -> None:
        self._plain_write()
        await self._conn.execute(UPDATE_JOB, update_params(job))

    async def save_many(self, changed: Sequence[Job]) -> None:
        """One executemany (pipelined by asyncpg) instead of one round trip per job."""
        self._plain_write()
        if len(changed) == 1:
            await self.save(changed[0])
        elif changed:
            await self._conn.execute(UPDATE_JOB, [update_params(j) for j in changed])

    async def get(
        self, job_id: UUID, *, user_id: str | None = None, for_update: bool = False
    ) -> Job | None:
        params: dict[str, Any] = {"job_pk": job_id}
        if user_id is not None:
            params["owner"] = user_id
        if not for_update:
            record = await fast.GET_JOB[user_id is not None].fetchrow(self._conn, params)
            return job_from_mapping(dict(record)) if record is not None else None
        if self._optimistic:
            if user_id is not None:
                raise NotOptimistic("optimistic unit of work: an owned read for update")
            known = self._fresh.take(job_id) if self._fresh is not None else None
            if known is not None:
                self._versions[job_id] = known.row_version
                return known.job
            record = await fast.GET_JOB_VERSIONED.fetchrow(self._conn, params)
            if record is None:
                return None
            values = dict(record)
            self._versions[job_id] = values.pop("row_version")
            return job_from_mapping(values)
        stmt = GET_JOB[(user_id is not None, for_update)]
        row = (await self._conn.execute(stmt, params)).first()
        return self._locked(row) if row is not None else None

    async def get_many_for_update(self, job_ids: Sequence[UUID]) -> dict[UUID, Job]:
        self._plain_write()
        if not job_ids:
            return {}
        # A stable lock order keeps concurrent batches from deadlocking.
        stmt = (
            sa.select(jobs)
            .where(jobs.c.id.in_(sorted(set(job_ids))))
            .order_by(jobs.c.id)
            .with_for_update()
        )
        return {row.id: self._locked(row) for row in (await self._conn.execute(stmt)).all()}
