"""The unit of work: the repositories and the outbox of one transaction.

The entry point opens the transaction (servicekit.uow.Database) and commits or rolls back;
handlers only stage changes.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.catalogue import Catalogue
from contracts.events import EventPayload
from job_api.adapters.repository import (
    DatasetRepository,
    IdempotencyRepository,
    JobEventRepository,
    JobRepository,
)
from job_api.adapters.tables import outbox
from job_api.domain.job import Job
from messaging.outbox import Outbox, outbox_row

SOURCE = "job-api"
_OUTBOX = Outbox(outbox, source=SOURCE)


class UnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.jobs = JobRepository(conn)
        self.events = JobEventRepository(conn)
        self.datasets = DatasetRepository(conn)
        self.idempotency = IdempotencyRepository(conn)
        # Run by the entry point once the transaction has committed (counters, never on rollback).
        self.after_commit: list[Callable[[], None]] = []

    async def add_job(
        self, job: Job, payloads: Sequence[EventPayload], history: Sequence[dict[str, Any]]
    ) -> None:
        """Insert a new job, stage its first events (numbered 1..n, taken in the job's row, so no
        reservation statement is needed) and its history rows: one statement."""
        for p in payloads:
            if getattr(p, "job_id", None) != job.id:
                raise ValueError("add_job stages only events about the new job")
        rows = [outbox_row(p, source=SOURCE, sequence=n) for n, p in enumerate(payloads, start=1)]
        await self.jobs.add_with_events(job, rows, history)

    async def publish(self, *payloads: EventPayload) -> None:
        """Stage events in the outbox. Events about a job carry its next `sequence` numbers, so a
        consumer can drop a status it receives after a newer one."""
        counts: dict[UUID, int] = {}
        for p in payloads:
            job_id = getattr(p, "job_id", None)
            if isinstance(job_id, UUID):
                counts[job_id] = counts.get(job_id, 0) + 1
        firsts = await self.jobs.next_sequences(counts) if counts else {}
        sequences: list[int | None] = []
        for p in payloads:
            job_id = getattr(p, "job_id", None)
            if isinstance(job_id, UUID) and job_id in firsts:
                sequences.append(firsts[job_id])
                firsts[job_id] += 1
            else:
                sequences.append(None)
        await _OUTBOX.add(self.conn, *payloads, sequences=sequences)


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
    data_ticket_secret: str = ""
    data_ticket_ttl: timedelta = timedelta(minutes=30)
    public_base_url: str = "http://localhost:8000"
