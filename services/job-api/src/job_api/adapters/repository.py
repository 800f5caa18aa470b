"""All SQL of job-api, built from the caller's connection (the entry point owns the transaction)."""

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from cachetools import TTLCache
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.enums import FailureClass, GPUProvider, JobPhase, JobStatus, JobType, WorkerPool
from contracts.routing import SHARED_POOL
from job_api.adapters.tables import (
    JOB_EVENTS_CHANNEL,
    idempotency_keys,
    inbox,
    job_events,
    jobs,
    known_datasets,
    outbox,
)
from job_api.domain.job import Job
from servicekit.db import json_text


def _only_if(rows: sa.Select[Any], applied: sa.CTE | None) -> sa.Select[Any]:
    """`rows`, or none of them when the `applied` write (a CTE) changed no row."""
    return rows if applied is None else rows.where(sa.exists(sa.select(applied.c.id)))


def _insert_events_and_notify(applied: sa.CTE | None = None) -> sa.Select[Any]:
    """History rows in, and one NOTIFY (`<job id>:<user id>`) per job they touch, in one round
    trip: a stream that is woken reads every row after its last id, so one wake per job suffices.
    With `applied`, only if that write changed a row.

    The rows travel as one array parameter per column, so the statement is compiled and prepared
    once whatever the number of rows (a multi-row VALUES is compiled anew on every call).
    """
    src = (
        sa.func.unnest(
            sa.cast(sa.bindparam("job_ids"), pg.ARRAY(pg.UUID(as_uuid=True))),
            sa.cast(sa.bindparam("user_ids"), pg.ARRAY(sa.Text)),
            sa.cast(sa.bindparam("attempts"), pg.ARRAY(sa.Integer)),
            sa.cast(sa.bindparam("kinds"), pg.ARRAY(sa.Text)),
            sa.cast(sa.bindparam("data"), pg.ARRAY(sa.Text)),
        )
        .table_valued("job_id", "user_id", "attempt", "kind", "data", with_ordinality="n")
        .render_derived()
    )
    rows = _only_if(
        sa.select(
            src.c.job_id, src.c.user_id, src.c.attempt, src.c.kind, sa.cast(src.c.data, pg.JSONB)
        ).order_by(src.c.n),  # ids follow the order of the rows given
        applied,
    )
    inserted = (
        pg.insert(job_events)
        .from_select(["job_id", "user_id", "attempt", "kind", "data"], rows)
        .returning(job_events.c.id, job_events.c.job_id, job_events.c.user_id)
        .cte("inserted")
    )
    touched = (
        sa.select(sa.func.concat_ws(":", inserted.c.job_id, inserted.c.user_id).label("p"))
        .distinct()
        .subquery("touched")
    )
    return sa.select(
        sa.func.pg_notify(sa.cast(sa.bindparam("channel"), sa.Text), touched.c.p)
    ).select_from(touched)


_INSERT_EVENTS = _insert_events_and_notify()
_JOB_FIELDS = [f.name for f in dataclasses.fields(Job)]


def _stage_outbox(applied: sa.CTE | None = None) -> sa.CTE:
    """Outbox rows from one array parameter per column (compiled once whatever their number);
    with `applied`, only if that write changed a row."""
    src = (
        sa.func.unnest(
            sa.cast(sa.bindparam("outbox_event_ids"), pg.ARRAY(pg.UUID(as_uuid=True))),
            sa.cast(sa.bindparam("outbox_event_types"), pg.ARRAY(sa.Text)),
            sa.cast(sa.bindparam("outbox_routing_keys"), pg.ARRAY(sa.Text)),
            sa.cast(sa.bindparam("outbox_bodies"), pg.ARRAY(sa.LargeBinary)),
            sa.cast(sa.bindparam("outbox_must_route"), pg.ARRAY(sa.Boolean)),
        )
        .table_valued(
            "event_id", "event_type", "routing_key", "body", "must_route", with_ordinality="n"
        )
        .render_derived()
    )
    return (
        pg.insert(outbox)
        .from_select(
            ["event_id", "event_type", "routing_key", "body", "must_route"],
            _only_if(
                sa.select(
                    src.c.event_id,
                    src.c.event_type,
                    src.c.routing_key,
                    src.c.body,
                    src.c.must_route,
                ).order_by(src.c.n),  # outbox ids follow the order of the events (relay order)
                applied,
            ),
        )
        .returning(outbox.c.id)
        .cte("staged")
    )


def _insert_job_with_events() -> sa.Select[Any]:
    """A new job, its outbox rows and its history rows (with their NOTIFY) in one statement, so
    creating a job costs one round trip inside its transaction instead of three. The job row and
    its history row are written by the same statement: the history's foreign key is checked at
    the end of the statement, when the job row exists."""
    job_columns = [*_JOB_FIELDS, "event_sequence"]
    new_job = (
        sa.insert(jobs)
        .values({c: sa.bindparam(f"job_{c}", type_=jobs.c[c].type) for c in job_columns})
        .returning(jobs.c.id, _row_version().label("row_version"))
        .cte("new_job")
    )
    staged = _stage_outbox()
    notified = _insert_events_and_notify().add_cte(new_job).subquery("notified")
    # One row: the new row's version, the outbox ids in the order of the events (the relay may
    # publish them at once, see messaging.outbox.OutboxRelay.publish_now), and the NOTIFYs, run
    # as a scalar subquery.
    return sa.select(
        sa.select(new_job.c.row_version).scalar_subquery().label("row_version"),
        sa.select(sa.func.array_agg(pg.aggregate_order_by(staged.c.id, staged.c.id)))
        .scalar_subquery()
        .label("outbox_ids"),
        sa.select(sa.func.count()).select_from(notified).scalar_subquery().label("notified"),
    ).add_cte(staged)


def _outbox_params(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "outbox_event_ids": [r["event_id"] for r in rows],
        "outbox_event_types": [r["event_type"] for r in rows],
        "outbox_routing_keys": [r["routing_key"] for r in rows],
        "outbox_bodies": [r["body"] for r in rows],
        "outbox_must_route": [r["must_route"] for r in rows],
    }


# Outbox rows and history rows (with their NOTIFY) in one statement.
_STAGE_EVENTS = _insert_events_and_notify().add_cte(_stage_outbox())


def _save_job_with_events() -> sa.Select[Any]:
    """A job loaded under lock saved (every column from `job_<column>` parameters), `n` event
    sequence numbers taken, its outbox rows and history rows (with their NOTIFY): one statement.
    The caller numbers the events from the sequence it read under the same lock."""
    saved = (
        sa.update(jobs)
        .where(jobs.c.id == sa.bindparam("job_pk"))
        .values(
            {c: sa.bindparam(f"job_{c}", type_=jobs.c[c].type) for c in _JOB_FIELDS if c != "id"}
        )
        .values(event_sequence=jobs.c.event_sequence + sa.bindparam("n", type_=sa.BigInteger))
        .returning(jobs.c.id)
        .cte("saved")
    )
    return _insert_events_and_notify().add_cte(saved, _stage_outbox())


_SAVE_JOB_WITH_EVENTS = _save_job_with_events()


# The version of a row: PostgreSQL's xmin, the transaction that wrote this version of it. Any
# UPDATE of the row, whatever columns it sets, gives it a new one.
def _row_version() -> sa.Cast[str]:
    return sa.cast(sa.literal_column("xmin"), sa.Text)


def _save_job_with_events_if_unchanged() -> sa.Select[Any]:
    """As _save_job_with_events, but only if the job row is still the version that was read
    (`row_version`): a compare-and-set, so the save needs no lock held since the read and no
    transaction block. It returns the job's id when it applied and no row when it did not, and
    then stages nothing."""
    saved = (
        sa.update(jobs)
        .where(jobs.c.id == sa.bindparam("job_pk"), _row_version() == sa.bindparam("row_version"))
        .values(
            {c: sa.bindparam(f"job_{c}", type_=jobs.c[c].type) for c in _JOB_FIELDS if c != "id"}
        )
        .values(event_sequence=jobs.c.event_sequence + sa.bindparam("n", type_=sa.BigInteger))
        .returning(jobs.c.id)
        .cte("saved")
    )
    notified = _insert_events_and_notify(saved).add_cte(_stage_outbox(saved)).subquery("notified")
    # The NOTIFYs run as a scalar subquery of the one row `saved` returns.
    return sa.select(
        saved.c.id,
        sa.select(sa.func.count()).select_from(notified).scalar_subquery().label("notified"),
    )


_SAVE_JOB_WITH_EVENTS_IF_UNCHANGED = _save_job_with_events_if_unchanged()

_INSERT_JOB_WITH_EVENTS = _insert_job_with_events()


def job_from_row(row: sa.Row[Any]) -> Job:
    return job_from_mapping(dict(row._mapping))


def job_from_mapping(values: dict[str, Any]) -> Job:
    values["job_type"] = JobType(values["job_type"])
    values["gpu_provider"] = GPUProvider(values["gpu_provider"])
    values["status"] = JobStatus(values["status"])
    values["phase"] = JobPhase(values["phase"])
    if values["failure_class"] is not None:
        values["failure_class"] = FailureClass(values["failure_class"])
    if values["worker_job_types"] is not None:
        values["worker_job_types"] = [JobType(t) for t in values["worker_job_types"]]
    values["worker_pool"] = WorkerPool(values["worker_pool"])
    return Job(**{k: values[k] for k in _JOB_FIELDS})


def job_values(job: Job) -> dict[str, Any]:
    values = {f: getattr(job, f) for f in _JOB_FIELDS}
    for key in ("job_type", "gpu_provider", "status", "phase", "failure_class", "worker_pool"):
        if values[key] is not None:
            values[key] = str(values[key])
    if values["worker_job_types"] is not None:
        values["worker_job_types"] = [str(t) for t in values["worker_job_types"]]
    return values


# The SET clause comes from the parameter names (every column but the key), so the statement is
# compiled once; building it with .values(literal values) cost a compilation-sized overhead per job.
_UPDATE_JOB = sa.update(jobs).where(jobs.c.id == sa.bindparam("job_pk"))


def _get_job(*, owned: bool, for_update: bool) -> sa.Select[Any]:
    stmt = sa.select(jobs).where(jobs.c.id == sa.bindparam("job_pk"))
    if owned:
        stmt = stmt.where(jobs.c.user_id == sa.bindparam("owner"))
    return stmt.with_for_update() if for_update else stmt


# Built once: a statement built per call costs its construction and cache key on every read.
_GET_JOB = {
    (owned, for_update): _get_job(owned=owned, for_update=for_update)
    for owned in (False, True)
    for for_update in (False, True)
}


@dataclasses.dataclass(frozen=True)
class _DriverStatement:
    """A Core statement compiled once to the driver's SQL, with its parameter names in order and
    the conversions SQLAlchemy would apply to them (JSONB values serialised, ...). The hottest
    statements go straight to asyncpg: SQLAlchemy's execution and result layers cost several
    times the driver's own work for them."""

    stmt: Any
    sql: str
    names: tuple[str, ...]
    converters: tuple[tuple[int, Callable[[Any], Any]], ...]
    constants: dict[str, Any]  # the statement's own literals (e.g. concat_ws's separator)

    @classmethod
    def of(cls, stmt: Any) -> "_DriverStatement":
        compiled = stmt.compile(dialect=_DIALECT)
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds
        converters = tuple(
            (i, conv)
            for i, name in enumerate(names)
            if (conv := binds[name].type.bind_processor(_DIALECT)) is not None
        )
        constants = {n: binds[n].value for n in names if not binds[n].required}
        return cls(stmt, compiled.string, names, converters, constants)

    def _args(self, params: dict[str, Any]) -> list[Any]:
        constants = self.constants
        args = [constants[n] if n in constants else params[n] for n in self.names]
        for i, conv in self.converters:
            if args[i] is not None:
                args[i] = conv(args[i])
        return args

    async def fetchrow(self, conn: AsyncConnection, params: dict[str, Any]) -> Any:
        # The pooled connection's asyncpg connection: SQLAlchemy set its codecs (JSONB decoded
        # as SQLAlchemy decodes it). Plain reads only: under READ COMMITTED a lone SELECT sees
        # the same rows whether or not the connection's transaction has begun, while a locking
        # read must run inside it (so it goes through SQLAlchemy, which begins it).
        _, driver = await _driver(conn)
        return await driver.fetchrow(self.sql, *self._args(params))

    async def execute(self, conn: AsyncConnection, params: dict[str, Any]) -> None:
        """A write. Straight to the driver when that is where SQLAlchemy would run it: on an
        autocommit connection, or inside a transaction that has begun. A transaction SQLAlchemy
        has not begun yet (it sends BEGIN with its first statement) gets this statement through
        SQLAlchemy, so the write can never land outside its transaction."""
        adapter, driver = await _driver(conn)
        if getattr(adapter, "autocommit", False) or driver.is_in_transaction():
            await driver.execute(self.sql, *self._args(params))
        else:
            await conn.execute(self.stmt, params)

    async def write_returning(self, conn: AsyncConnection, params: dict[str, Any]) -> Any:
        """A write that returns a row (a mapping, or None), run where `execute` would run it."""
        adapter, driver = await _driver(conn)
        if getattr(adapter, "autocommit", False) or driver.is_in_transaction():
            return await driver.fetchrow(self.sql, *self._args(params))
        row = (await conn.execute(self.stmt, params)).first()
        return None if row is None else row._mapping


async def _driver(conn: AsyncConnection) -> tuple[Any, Any]:
    """(the pooled DBAPI adapter, its asyncpg connection)."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    return raw.dbapi_connection, driver


# JSON parameters serialised as the engine does (servicekit.db.make_engine).
_DIALECT = pg_asyncpg.dialect(json_serializer=json_text)  # type: ignore[no-untyped-call]
# The hottest read (GET /jobs/{id}) and writes (a new job, a claim's save): straight to the driver.
_GET_JOB_DRIVER = {owned: _DriverStatement.of(_GET_JOB[(owned, False)]) for owned in (False, True)}
_INSERT_JOB_WITH_EVENTS_DRIVER = _DriverStatement.of(_INSERT_JOB_WITH_EVENTS)
_SAVE_JOB_WITH_EVENTS_DRIVER = _DriverStatement.of(_SAVE_JOB_WITH_EVENTS)
_SAVE_JOB_WITH_EVENTS_IF_UNCHANGED_DRIVER = _DriverStatement.of(_SAVE_JOB_WITH_EVENTS_IF_UNCHANGED)
# A read that also returns the row's version, for a save that checks it instead of holding a lock.
_GET_JOB_VERSIONED_DRIVER = _DriverStatement.of(
    sa.select(jobs, _row_version().label("row_version")).where(jobs.c.id == sa.bindparam("job_pk"))
)

# Every column from the parameters (as _UPDATE_JOB) and `n` more event sequence numbers taken.
_SAVE_RESERVING = (
    sa.update(jobs)
    .where(jobs.c.id == sa.bindparam("job_pk"))
    .values(event_sequence=jobs.c.event_sequence + sa.bindparam("n", type_=sa.BigInteger))
    .returning(jobs.c.event_sequence)
)

_NEXT_SEQUENCE = (
    sa.update(jobs)
    .where(jobs.c.id == sa.bindparam("job_pk"))
    .values(event_sequence=jobs.c.event_sequence + sa.bindparam("n", type_=sa.BigInteger))
    .returning(jobs.c.event_sequence)
)


def _update_params(job: Job) -> dict[str, Any]:
    values = job_values(job)
    values["job_pk"] = values.pop("id")
    return values


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


@dataclasses.dataclass(frozen=True)
class KnownDataset:
    dataset_id: UUID
    user_id: str
    job_types: list[str]
    deleted: bool
    sha256: str | None = None
    size_bytes: int | None = None
    format: str | None = None


def _detached(job: Job) -> Job:
    """A copy of `job` that shares no mutable value with it (its dicts and lists are copied; the
    rest is immutable), at a fraction of a deepcopy's cost."""
    twin = copy.copy(job)
    for name in _JOB_FIELDS:
        if isinstance(value := getattr(job, name), dict | list):
            setattr(twin, name, copy.deepcopy(value))
    return twin


@dataclasses.dataclass(frozen=True)
class FreshJob:
    """A job as this process has just written it: the row's version and its last event sequence
    number with it."""

    job: Job
    row_version: str
    sequence: int


@dataclasses.dataclass(frozen=True)
class Inserted:
    outbox_ids: list[int]  # in the order of the rows given
    fresh: FreshJob


class FreshJobs:
    """Jobs this process created in the last minute (at most `size`, about 2 KB each), for the
    optimistic claim: a claim served by the process that created the job skips the read and
    saves against the version it wrote. Only ever a guess: the save still compares the version,
    so a job changed since (cancelled, marked no_worker) costs one statement that writes nothing,
    then the claim runs under the row lock. Each entry is used once. A job claimed later than a
    minute, or after a thousand newer ones, is read as any other."""

    def __init__(self, size: int = 1_000, ttl: float = 60.0) -> None:
        self._entries: TTLCache[UUID, FreshJob] = TTLCache(maxsize=size, ttl=ttl)

    def remember(self, fresh: FreshJob) -> None:
        # A copy: the caller's object goes on to build its response, the claim changes this one.
        self._entries[fresh.job.id] = dataclasses.replace(fresh, job=_detached(fresh.job))

    def take(self, job_id: UUID) -> FreshJob | None:
        return self._entries.pop(job_id, None)

    def __len__(self) -> int:
        return len(self._entries)


class ConcurrentUpdate(Exception):
    """An optimistic save found the job changed since it was read: nothing was written. Run the
    work again in a transaction that locks the row."""


class NeedsTransaction(Exception):
    """Optimistic mode cannot do this write (it is not a checked save, or not the first write):
    nothing was written. Run the work again in a transaction that locks the row."""


class JobRepository:
    """With `optimistic`, on a connection without a transaction block (each statement commits
    on its own): a read "for update" takes no lock but remembers the row's version, and the one
    write allowed, a save of that job, applies only if the row is still that version (else
    ConcurrentUpdate). Any other write raises NeedsTransaction before it runs. Either way the
    save lands only on the row as it was read, as under a lock held since the read."""

    def __init__(
        self, conn: AsyncConnection, *, optimistic: bool = False, fresh: FreshJobs | None = None
    ) -> None:
        self._conn = conn
        self._optimistic = optimistic
        self._fresh = fresh
        self._wrote = False
        # The event sequence of each job this transaction read under lock (FOR UPDATE): stable
        # until commit, so the job's next events can be numbered without another statement.
        # In optimistic mode: as read, with the row's version in _versions.
        self._locked_sequences: dict[UUID, int] = {}
        self._versions: dict[UUID, str] = {}

    def _plain_write(self) -> None:
        """Called before a write (or a locking read) that optimistic mode cannot check."""
        if self._optimistic:
            self._nothing_written_yet()
            raise NeedsTransaction("optimistic unit of work: only one checked save")

    def _nothing_written_yet(self) -> None:
        """After the checked save has committed, the work cannot be run again in a transaction
        (it would apply twice): a handler that writes more is a bug, not a retry."""
        if self._wrote:
            raise RuntimeError("optimistic unit of work: a second write after a committed one")

    def _locked(self, row: sa.Row[Any]) -> Job:
        self._locked_sequences[row.id] = int(row.event_sequence)
        return job_from_row(row)

    def _taken(self, job_id: UUID, last: int) -> None:
        """Sequence numbers up to `last` were taken: a job read under lock numbers on from it."""
        if job_id in self._locked_sequences:
            self._locked_sequences[job_id] = last

    def locked_sequence(self, job_id: UUID) -> int | None:
        """The last event sequence number of a job read under lock in this transaction (None if
        it was not)."""
        return self._locked_sequences.get(job_id)

    async def add_with_events(
        self, job: Job, outbox_rows: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]]
    ) -> Inserted:
        """Insert a new job with its first outbox rows (`messaging.outbox.outbox_row`; their
        sequences 1..n are taken in the job's row) and history rows, in one round trip."""
        self._plain_write()
        params: dict[str, Any] = {f"job_{k}": v for k, v in job_values(job).items()}
        params["job_event_sequence"] = len(outbox_rows)
        params.update(_outbox_params(outbox_rows))
        params.update(_history_params(history))
        row = await _INSERT_JOB_WITH_EVENTS_DRIVER.write_returning(self._conn, params)
        return Inserted(
            outbox_ids=list(row["outbox_ids"] or []),
            fresh=FreshJob(job=job, row_version=row["row_version"], sequence=len(outbox_rows)),
        )

    async def save_reserving(self, job: Job, count: int) -> int:
        """Save a job (loaded under lock) and reserve `count` event sequence numbers in the same
        UPDATE; returns the first of them."""
        self._plain_write()
        params = _update_params(job)
        params["n"] = count
        last = int((await self._conn.execute(_SAVE_RESERVING, params)).scalar_one())
        self._taken(job.id, last)
        return last - count + 1

    async def save_with_events(
        self,
        job: Job,
        reserved: int,
        outbox_rows: Sequence[dict[str, Any]],
        history: Sequence[dict[str, Any]],
    ) -> None:
        """Save a job read under lock in this transaction, taking `reserved` more event
        sequence numbers (those after `locked_sequence`, which `outbox_rows` carry), and stage the
        outbox and history rows: one round trip."""
        known = self._locked_sequences.get(job.id)
        if known is None:
            raise RuntimeError(f"job {job.id} was not read under lock in this transaction")
        params: dict[str, Any] = {f"job_{k}": v for k, v in job_values(job).items() if k != "id"}
        params["job_pk"] = job.id
        params["n"] = reserved
        params.update(_outbox_params(outbox_rows))
        params.update(_history_params(history))
        if not self._optimistic:
            await _SAVE_JOB_WITH_EVENTS_DRIVER.execute(self._conn, params)
        else:
            self._nothing_written_yet()
            params["row_version"] = self._versions[job.id]
            self._wrote = True  # from here on, whatever happens, no retry in this mode
            applied = await _SAVE_JOB_WITH_EVENTS_IF_UNCHANGED_DRIVER.fetchrow(self._conn, params)
            if applied is None:
                raise ConcurrentUpdate(f"job {job.id} changed since it was read")
        self._locked_sequences[job.id] = known + reserved

    async def stage_events(
        self, outbox_rows: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]]
    ) -> None:
        """Outbox rows (`messaging.outbox.outbox_row`) and history rows in one round trip."""
        self._plain_write()
        if not outbox_rows and not history:
            return
        params = {**_outbox_params(outbox_rows), **_history_params(history)}
        await self._conn.execute(_STAGE_EVENTS, params)

    async def save(self, job: Job) -> None:
        self._plain_write()
        await self._conn.execute(_UPDATE_JOB, _update_params(job))

    async def save_many(self, changed: Sequence[Job]) -> None:
        """One executemany (pipelined by asyncpg) instead of one round trip per job."""
        self._plain_write()
        if len(changed) == 1:
            await self.save(changed[0])
        elif changed:
            await self._conn.execute(_UPDATE_JOB, [_update_params(j) for j in changed])

    async def get(
        self, job_id: UUID, *, user_id: str | None = None, for_update: bool = False
    ) -> Job | None:
        params: dict[str, Any] = {"job_pk": job_id}
        if user_id is not None:
            params["owner"] = user_id
        if not for_update:
            record = await _GET_JOB_DRIVER[user_id is not None].fetchrow(self._conn, params)
            return job_from_mapping(dict(record)) if record is not None else None
        if self._optimistic:
            if user_id is not None:
                raise NeedsTransaction("optimistic unit of work: an owned read for update")
            known = self._fresh.take(job_id) if self._fresh is not None else None
            if known is not None:
                self._versions[job_id] = known.row_version
                self._locked_sequences[job_id] = known.sequence
                return known.job
            record = await _GET_JOB_VERSIONED_DRIVER.fetchrow(self._conn, params)
            if record is None:
                return None
            values = dict(record)
            self._versions[job_id] = values.pop("row_version")
            self._locked_sequences[job_id] = int(values["event_sequence"])
            return job_from_mapping(values)
        stmt = _GET_JOB[(user_id is not None, for_update)]
        row = (await self._conn.execute(stmt, params)).first()
        return self._locked(row) if row is not None else None

    async def next_sequences(self, counts: dict[UUID, int]) -> dict[UUID, int]:
        """Reserve `counts[job]` event sequence numbers per job; returns the first of each. A job
        not (yet) in the table gets none."""
        self._plain_write()
        firsts: dict[UUID, int] = {}
        for job_id, count in counts.items():
            last = (
                await self._conn.execute(_NEXT_SEQUENCE, {"job_pk": job_id, "n": count})
            ).scalar_one_or_none()
            if last is not None:
                firsts[job_id] = int(last) - count + 1
                self._taken(job_id, int(last))
        return firsts

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

    async def pending_phase_counts(self) -> dict[PendingGroup, dict[JobPhase, int]]:
        """How many pending jobs each group (the workers they wait for) has in each phase: one
        aggregate over the pending index, so the presence monitor loads no job unless one needs
        its phase changed."""
        group = (jobs.c.worker_pool, jobs.c.owner_pool, jobs.c.job_type, jobs.c.gpu_provider)
        stmt = (
            sa.select(*group, jobs.c.phase, sa.func.count())
            .where(jobs.c.status == "pending")
            .group_by(*group, jobs.c.phase)
        )
        counts: dict[PendingGroup, dict[JobPhase, int]] = {}
        for pool, owner, t, p, phase, n in (await self._conn.execute(stmt)).all():
            key = (WorkerPool(pool), owner, JobType(t), GPUProvider(p))
            counts.setdefault(key, {})[JobPhase(phase)] = int(n)
        return counts

    async def pending_in_group(self, group: PendingGroup) -> list[Job]:
        pool, owner, job_type, provider = group
        stmt = (
            sa.select(jobs)
            .where(
                jobs.c.status == "pending",
                jobs.c.worker_pool == str(pool),
                jobs.c.owner_pool.is_(None) if owner is None else jobs.c.owner_pool == owner,
                jobs.c.job_type == str(job_type),
                jobs.c.gpu_provider == str(provider),
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


def _history_params(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "job_ids": [r["job_id"] for r in rows],
        "user_ids": [r["user_id"] for r in rows],
        "attempts": [r["attempt"] for r in rows],
        "kinds": [r["kind"] for r in rows],
        "data": [json_text(r["data"]) for r in rows],
        "channel": JOB_EVENTS_CHANNEL,
    }


class JobEventRepository:
    """Progress history; each insert is also pushed (NOTIFY, delivered at commit) to live streams."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """rows: job_id, user_id, attempt, kind, data."""
        if not rows:
            return
        # Live streams only need the pointer; they read the row itself (NOTIFY payloads are capped).
        await self._conn.execute(_INSERT_EVENTS, _history_params(rows))

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


class IdempotencyRepository:
    """`Idempotency-Key` records of job creation, one per (user, key)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def claim(
        self, *, user_id: str, key: str, request_hash: str, job_id: UUID
    ) -> tuple[UUID, str] | None:
        """Record that `key` creates `job_id`; None when this call owns the key now. If the key is
        taken, the (job id, request hash) it was taken with. A concurrent claim of the same key
        waits on the row until the first transaction ends (then sees its row, or takes the key
        if it rolled back), so two retries can never both create a job."""
        t = idempotency_keys
        inserted = await self._conn.execute(
            pg.insert(t)
            .values(user_id=user_id, key=key, request_hash=request_hash, job_id=job_id)
            .on_conflict_do_nothing()
            .returning(t.c.job_id)
        )
        if inserted.first() is not None:
            return None
        row = (
            await self._conn.execute(
                sa.select(t.c.job_id, t.c.request_hash).where(
                    t.c.user_id == user_id, t.c.key == key
                )
            )
        ).first()
        assert row is not None, "a conflicting key row is visible once its transaction ended"
        return row.job_id, row.request_hash


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


class DatasetRepository:
    def __init__(self, conn: AsyncConnection, *, read_only: bool = False) -> None:
        self._conn = conn
        self._read_only = read_only

    def _write(self) -> None:
        if self._read_only:
            raise NeedsTransaction("optimistic unit of work: datasets are read-only")

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
    ) -> None:
        self._write()
        file_facts = {"sha256": sha256, "size_bytes": size_bytes, "format": format}
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
        )
