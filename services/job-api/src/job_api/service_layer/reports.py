"""Worker reports: one handler per kind of report, shared by the broker and the HTTP paths.

A report is a heartbeat (progress), a failure, or a completion (the pushed model). Each path turns
what it received into one of these (the broker path from `job.progress` / `job.failed` /
`model.pushed`, the HTTP path from the brief's PATCH body) together with the sender's `Credential`;
from there on the code is the same: the aggregate fences the sender (StaleAttempt with the real
reason), applies the report, and the transition is announced.

A `Reports` collects what one transaction changes (jobs to save, history rows, stop notices) so a
batch of hundreds of reports costs a few statements.
"""

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog

from contracts.enums import CancelReason, FailureClass
from contracts.events import JobCancelRequested, Trace, current_trace, within
from job_api.domain.errors import DomainError, StaleAttempt
from job_api.domain.job import Credential, Job, Progress, PushedModel
from job_api.service_layer.announce import announce
from job_api.service_layer.unit_of_work import Policy, UnitOfWork
from servicekit.handlers import EventHandlers

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Heartbeat:
    job_id: UUID
    who: Credential
    progress: Progress
    # The report as the job's history keeps it (progress, phase, metrics, log lines...).
    history: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    job_id: UUID
    who: Credential
    error: str
    failure_class: FailureClass
    retryable: bool = False


@dataclass(frozen=True)
class Completion:
    job_id: UUID
    who: Credential
    model: PushedModel
    logs_url: str | None = None


Report = Heartbeat | Failure | Completion


@dataclass
class Outcome:
    applied: int = 0
    stale: int = 0
    unknown_job: int = 0


class Reports:
    """Applies reports within one unit of work; `flush()` writes what they changed."""

    def __init__(self, uow: UnitOfWork, policy: Policy, *, now: datetime) -> None:
        self.uow = uow
        self.policy = policy
        self.now = now
        self.outcome = Outcome()
        self._changed: dict[UUID, Job] = {}
        self._rows: list[dict[str, Any]] = []
        # (job, attempt, sha256 of the sender's secret or None for whoever holds that attempt),
        # with the trace of the report that asked for it
        self._stop: dict[tuple[UUID, int, str | None], Trace | None] = {}

    async def apply(self, job: Job, report: Report) -> None:
        """Fence and apply one report. Raises StaleAttempt (the sender does not hold the job) or
        another DomainError (e.g. an illegal transition); the job is unchanged then."""
        await HANDLERS.dispatch(Applying(self, job), report)
        self.outcome.applied += 1
        self._changed[job.id] = job

    async def apply_from_broker(self, job: Job, report: Report) -> None:
        """A broker report that does not come from the holder is ignored, and its sender told to
        stop. When it names the current attempt with a wrong secret, the notice carries the hash
        of that wrong secret: only its sender stops, the attempt's real holder trains on."""
        try:
            await self.apply(job, report)
        except StaleAttempt as exc:
            self.outcome.stale += 1
            attempt = report.who.attempt
            log.info(
                "worker_report.stale",
                job_id=str(job.id),
                attempt=attempt,
                current=job.attempt,
                status=str(job.status),
                worker_id=report.who.worker_id,
                reason=str(exc),
            )
            if attempt is not None and not job.holds(attempt):
                self._stop[(job.id, attempt, None)] = current_trace()
            elif (
                attempt is not None
                and report.who.secret_hash is not None
                and report.who.secret_hash != job.claim_secret_hash
            ):
                self._stop[(job.id, attempt, report.who.secret_hash)] = current_trace()
        except DomainError as exc:
            log.warning("worker_report.refused", job_id=str(job.id), code=exc.code, error=str(exc))

    def history(self, row: dict[str, Any]) -> None:
        self._rows.append(row)

    async def flush(self) -> Outcome:
        await self.uow.jobs.save_many(list(self._changed.values()))
        await self.uow.events.add_many(self._rows)
        # Each stop notice is caused by the stale report that asked for it (rare: one statement
        # per report's trace).
        by_trace: dict[Trace | None, list[JobCancelRequested]] = {}
        for (job_id, attempt, secret_hash), trace in self._stop.items():
            by_trace.setdefault(trace, []).append(
                JobCancelRequested(
                    job_id=job_id,
                    attempt=attempt,
                    reason=CancelReason.STALE_ATTEMPT,
                    claim_secret_sha256=secret_hash,
                )
            )
        for trace, notices in by_trace.items():
            with within(trace) if trace is not None else contextlib.nullcontext():
                await self.uow.publish(*notices)
        self._changed.clear()
        self._rows.clear()
        self._stop.clear()
        return self.outcome


def progress_row(job: Job, attempt: int, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "user_id": job.user_id,
        "attempt": attempt,
        "kind": "progress",
        "data": data,
    }


@dataclass(frozen=True)
class Applying:
    """What a report's handler works on: the batch and the job (loaded under lock)."""

    reports: Reports
    job: Job


HANDLERS: EventHandlers[Applying, Report] = EventHandlers()


@HANDLERS.on(Heartbeat)
async def on_heartbeat(on: Applying, r: Heartbeat) -> None:
    reports, job = on.reports, on.job
    taken = job.record_progress(r.who, r.progress, now=reports.now, lease=reports.policy.lease)
    if not taken:
        # Late or reordered: the lease is renewed, the progress kept where it is.
        log.info("job.progress_behind", job_id=str(job.id), attempt=job.attempt)
    reports.history(progress_row(job, job.attempt, r.history))


@HANDLERS.on(Failure)
async def on_failure(on: Applying, r: Failure) -> None:
    reports, job = on.reports, on.job
    transition = job.fail(
        r.who,
        error=r.error,
        failure_class=r.failure_class,
        retryable=r.retryable,
        now=reports.now,
        backoff=reports.policy.retry_backoff,
    )
    await announce(reports.uow, job, transition, now=reports.now)


@HANDLERS.on(Completion)
async def on_completion(on: Applying, r: Completion) -> None:
    reports, job = on.reports, on.job
    transition = job.complete(r.who, now=reports.now, model=r.model, logs_url=r.logs_url)
    await announce(reports.uow, job, transition, now=reports.now)
