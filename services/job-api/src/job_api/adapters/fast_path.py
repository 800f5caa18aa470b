"""The claim's fast path, behind JobRepository's interface (the entry points only hold the
FreshJobs they hand it).

Why it exists: bench/dispatch_latency.py (a job created, claimed by a worker, its events
delivered; its target is 1.5x a raw asyncpg + aio-pika floor) is dominated by job-api's own CPU
per request, not by PostgreSQL. Two things cut it:

- DriverStatement: the hottest statements (GET /jobs/{id}'s read, a new job with its events, a
  claim's save with its events) compiled once to asyncpg's SQL and sent to the driver directly;
  SQLAlchemy's execution and result layers cost several times the driver's own work for them.
- FreshJobs: the jobs this process has just created, with the row version it wrote, so a claim
  that follows on the same process (the usual case) skips its read and saves against that
  version (the save still compares it, so a stale entry only costs a save that writes nothing).

Neither changes what is written: each statement is the same Core statement the repository would
run through SQLAlchemy.
"""

import copy
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
from cachetools import TTLCache
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from job_api.adapters import job_statements as stmts
from job_api.adapters.job_statements import JOB_FIELDS
from job_api.domain.job import Job
from servicekit.db import json_text

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class DriverStatement:
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
    def of(cls, stmt: Any) -> "DriverStatement":
        compiled = stmt.compile(dialect=DIALECT)
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds
        converters = tuple(
            (i, conv)
            for i, name in enumerate(names)
            if (conv := binds[name].type.bind_processor(DIALECT)) is not None
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
        _, driver = await driver_of(conn)
        return await _gone_invalidates(conn, driver.fetchrow(self.sql, *self._args(params)))

    async def execute(self, conn: AsyncConnection, params: dict[str, Any]) -> None:
        """A write. Straight to the driver when that is where SQLAlchemy would run it: on an
        autocommit connection, or inside a transaction that has begun. A transaction SQLAlchemy
        has not begun yet (it sends BEGIN with its first statement) gets this statement through
        SQLAlchemy, so the write can never land outside its transaction."""
        adapter, driver = await driver_of(conn)
        if getattr(adapter, "autocommit", False) or driver.is_in_transaction():
            await _gone_invalidates(conn, driver.execute(self.sql, *self._args(params)))
        else:
            await conn.execute(self.stmt, params)

    async def write_returning(self, conn: AsyncConnection, params: dict[str, Any]) -> Any:
        """A write that returns a row (a mapping, or None), run where `execute` would run it."""
        adapter, driver = await driver_of(conn)
        if getattr(adapter, "autocommit", False) or driver.is_in_transaction():
            return await _gone_invalidates(conn, driver.fetchrow(self.sql, *self._args(params)))
        row = (await conn.execute(self.stmt, params)).first()
        return None if row is None else row._mapping


# What asyncpg raises when its connection is gone (PostgreSQL restarted or unreachable).
_GONE = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)


async def _gone_invalidates(conn: AsyncConnection, call: Awaitable[T]) -> T:
    """`call` on the driver; when it finds the connection gone, the pool is told to drop it, as
    SQLAlchemy does for its own statements (else the dead connection would go back to the pool
    and fail every request that gets it). The error still reaches the caller (a 503)."""
    try:
        return await call
    except _GONE as exc:
        await conn.invalidate(exc)
        raise


async def driver_of(conn: AsyncConnection) -> tuple[Any, Any]:
    """(the pooled DBAPI adapter, its asyncpg connection)."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    return raw.dbapi_connection, driver


# JSON parameters serialised as the engine does (servicekit.db.make_engine).
DIALECT = pg_asyncpg.dialect(json_serializer=json_text)  # type: ignore[no-untyped-call]
# The hottest read (GET /jobs/{id}) and writes (a new job, a claim's save): straight to the driver.
GET_JOB = {owned: DriverStatement.of(stmts.GET_JOB[(owned, False)]) for owned in (False, True)}
INSERT_JOB_WITH_EVENTS = DriverStatement.of(stmts.INSERT_JOB_WITH_EVENTS)
SAVE_JOB_WITH_EVENTS = DriverStatement.of(stmts.SAVE_JOB_WITH_EVENTS)
SAVE_JOB_WITH_EVENTS_IF_UNCHANGED = DriverStatement.of(stmts.SAVE_JOB_WITH_EVENTS_IF_UNCHANGED)
GET_JOB_VERSIONED = DriverStatement.of(stmts.GET_JOB_VERSIONED)


def detached(job: Job) -> Job:
    """A copy of `job` that shares no mutable value with it (its dicts and lists are copied; the
    rest is immutable), at a fraction of a deepcopy's cost."""
    twin = copy.copy(job)
    for name in JOB_FIELDS:
        if isinstance(value := getattr(job, name), dict | list):
            setattr(twin, name, copy.deepcopy(value))
    return twin


@dataclasses.dataclass(frozen=True)
class FreshJob:
    """A job as this process has just written it, with the row's version."""

    job: Job
    row_version: str


@dataclasses.dataclass(frozen=True)
class Inserted:
    # The outbox rows' ids and bodies (numbered), in the order of the rows given.
    outbox_ids: list[int]
    outbox_bodies: list[bytes]
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
        self._entries[fresh.job.id] = dataclasses.replace(fresh, job=detached(fresh.job))

    def take(self, job_id: UUID) -> FreshJob | None:
        return self._entries.pop(job_id, None)

    def __len__(self) -> int:
        return len(self._entries)
