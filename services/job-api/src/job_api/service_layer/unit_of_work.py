"""The unit of work: the repositories and the outbox of one transaction.

Every entry point (routes, the consumer, the claim server, streams, the watchdog) opens it the
same way, `async with state.units.writing(pool) as uow:` (servicekit.uow.Units): the block's end
commits, an exception rolls back, and what the unit collected for after the commit (counters, new
jobs' events for the relay, jobs to remember) is handed over only then. Handlers only stage
changes; their events go to the outbox in the statement that makes the change.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.catalogue import Catalogue
from contracts.events import EventPayload
from job_api.adapters.datasets import DatasetRepository
from job_api.adapters.event_statements import OUTBOX
from job_api.adapters.event_statements import SOURCE as SOURCE  # imported from here too
from job_api.adapters.fast_path import FreshJob, FreshJobs
from job_api.adapters.history import JobEventRepository
from job_api.adapters.idempotency import IdempotencyRepository
from job_api.adapters.jobs import JobRepository, NotOptimistic
from job_api.adapters.namespaces import NamespaceRepository, UnlinkedUsers
from job_api.adapters.retention import RetentionRepository
from job_api.adapters.workers import WorkerCache, WorkerRepository
from job_api.domain.job import Job
from job_api.domain.namespaces import TokenCipher


@dataclass(frozen=True)
class Caches:
    """What a process remembers for a few seconds to spare the hot paths a read: enrolled
    workers (the claim's credential check) and owners without a linked Hub token (the claim's
    JobSpec). Each sits behind its repository's own interface."""

    workers: WorkerCache = field(default_factory=WorkerCache)
    unlinked: UnlinkedUsers = field(default_factory=UnlinkedUsers)


class UnitOfWork:
    """The repositories on one connection. `optimistic` (on a connection without a transaction
    block, `Units.writing(one_statement=True)`): jobs read "for update" are not locked but
    versioned, and the one write allowed is a save of such a job that applies only if the row is
    unchanged (JobRepository). A handler run on it asks `optimistic` before any other write and
    says when it needs the row lock instead (the claim); then the entry point runs it again in a
    transaction. A write the mode cannot check is a bug (NotOptimistic)."""

    def __init__(
        self,
        conn: AsyncConnection,
        *,
        optimistic: bool = False,
        fresh: FreshJobs | None = None,
        caches: "Caches | None" = None,
    ) -> None:
        self.conn = conn
        self.optimistic = optimistic
        self.jobs = JobRepository(conn, optimistic=optimistic, fresh=fresh)
        self._events = JobEventRepository(conn)
        self.datasets = DatasetRepository(conn, read_only=optimistic)
        self.workers = WorkerRepository(conn, cache=caches.workers if caches else None)
        self._idempotency = IdempotencyRepository(conn)
        self.namespaces = NamespaceRepository(conn, unlinked=caches.unlinked if caches else None)
        self.retention = RetentionRepository(conn)
        # Run once the unit has committed (counters; never on rollback).
        self.after_commit: list[Callable[[], None]] = []
        # Outbox rows (with their ids) about jobs this unit of work created: no event of theirs
        # can be older, so once committed the relay may publish them at once (publish_now).
        self.new_subject_rows: list[dict[str, Any]] = []
        # The jobs it created, as written (for FreshJobs, once committed).
        self.created: list[FreshJob] = []

    @property
    def events(self) -> JobEventRepository:
        if self.optimistic:
            raise NotOptimistic("optimistic unit of work: no history repository")
        return self._events

    @property
    def idempotency(self) -> IdempotencyRepository:
        if self.optimistic:
            raise NotOptimistic("optimistic unit of work: no idempotency repository")
        return self._idempotency

    async def add_job(
        self, job: Job, payloads: Sequence[EventPayload], history: Sequence[dict[str, Any]]
    ) -> None:
        """Insert a new job, stage its first events and its history rows: one statement."""
        for p in payloads:
            if getattr(p, "job_id", None) != job.id:
                raise ValueError("add_job stages only events about the new job")
        rows = OUTBOX.rows(payloads)
        inserted = await self.jobs.add_with_events(job, rows, history)
        self.new_subject_rows.extend(
            {**row, "id": outbox_id, "body": body}
            for row, outbox_id, body in zip(
                rows, inserted.outbox_ids, inserted.outbox_bodies, strict=True
            )
        )
        self.created.append(inserted.fresh)

    async def publish(
        self, *payloads: EventPayload, history: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Stage events in the outbox, and `history` rows, in one statement. The outbox numbers
        each job's events (`sequence`), so a consumer can drop a status it receives after a newer
        one."""
        await self.jobs.stage_events(OUTBOX.rows(payloads), history)

    async def save_and_publish(
        self, job: Job, *payloads: EventPayload, history: Sequence[dict[str, Any]] = ()
    ) -> bool:
        """Save `job` (loaded under lock) and stage the events and `history`: one statement.
        False when an optimistic unit found the row changed since it was read (nothing
        written)."""
        return await self.jobs.save_with_events(job, OUTBOX.rows(payloads), history)


@dataclass(frozen=True)
class Policy:
    """The rules a deployment chooses (read from settings by the entry points)."""

    catalogue: Catalogue
    lease: timedelta = timedelta(seconds=90)
    max_attempts: int = 3
    # A pending job is offered again when its last offer is this old (a lost or dead-lettered
    # message must not leave it waiting forever).
    redispatch_after: timedelta = timedelta(minutes=30)
    allow_external_data_urls: bool = True
    # Hosts (`files.example.com`) or suffixes (`.example.com`) an external data URL may name even
    # where the SSRF guard would refuse them (an operator's own file server).
    data_url_allowed_hosts: tuple[str, ...] = ()
    max_external_data_bytes: int = 10 << 30
    # A retryable failure is offered again after this long, doubled per attempt (capped).
    retry_backoff: timedelta = timedelta(seconds=10)
    # A worker is online while its last heartbeat is younger than this.
    worker_online: timedelta = timedelta(seconds=30)
    data_ticket_secret: str = ""
    data_ticket_ttl: timedelta = timedelta(minutes=30)
    public_base_url: str = "http://localhost:8000"
    # Linked Hub tokens: encrypted at rest with this, and asked about at this Hub.
    token_cipher: TokenCipher | None = None
    hf_endpoint: str = "https://huggingface.co"
