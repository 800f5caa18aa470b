"""The brief's HTTP worker API (`GET /jobs/pending`, `PATCH /jobs/{id}`), kept for compatibility.

It is a thin translation onto the same aggregate methods the broker path uses, so the state
machine and the fencing are the same: a PATCH that names an old attempt is refused (409).
"""

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from contracts.enums import FailureClass, GPUProvider, JobPhase, JobStatus, JobType
from contracts.events import JobProgress
from job_api.adapters.repository import JobFilter
from job_api.domain.errors import IllegalTransition, JobNotFound
from job_api.domain.job import Job
from job_api.service_layer.announce import announce
from job_api.service_layer.dispatch import progress_of, progress_row
from job_api.service_layer.unit_of_work import Policy, UnitOfWork

HTTP_WORKER = "http-worker"


@dataclass(frozen=True)
class WorkerUpdate:
    status: JobStatus | None = None
    progress: float | None = None
    error: str | None = None
    logs_url: str | None = None
    attempt: int | None = None
    worker_id: str | None = None
    phase: JobPhase | None = None
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    eta_seconds: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    log_lines: list[str] = field(default_factory=list)
    output_revision: str | None = None
    failure_class: FailureClass | None = None
    retryable: bool = False


def _heartbeat(job: Job, u: WorkerUpdate) -> JobProgress:
    """The update as the broker path's heartbeat event, so both paths share one code path."""
    return JobProgress(
        job_id=job.id,
        attempt=job.attempt,
        worker_id=job.worker_id or HTTP_WORKER,
        progress=u.progress if u.progress is not None else job.progress,
        phase=u.phase or JobPhase.TRAINING,
        step=u.step,
        total_steps=u.total_steps,
        epoch=u.epoch,
        loss=u.loss,
        metrics=u.metrics,
        log_lines=u.log_lines,
        eta_seconds=u.eta_seconds,
        logs_url=u.logs_url,
    )


async def update_job(
    uow: UnitOfWork, job_id: UUID, u: WorkerUpdate, policy: Policy, *, now: datetime
) -> Job:
    job = await uow.jobs.get(job_id, for_update=True)
    if job is None:
        raise JobNotFound(job_id)
    target = u.status
    if target is JobStatus.RUNNING and job.status is JobStatus.PENDING:
        transition = job.claim(
            worker_id=u.worker_id or HTTP_WORKER, claim_id=None, now=now, lease=policy.lease
        )
        await announce(uow, job, transition, now=now)
        if u.progress is not None or u.log_lines or u.metrics:
            await _record(uow, job, job.attempt, u, policy, now)
    elif target is None or target is JobStatus.RUNNING:
        await _record(uow, job, u.attempt, u, policy, now)
    elif target is JobStatus.COMPLETED:
        if u.log_lines or u.metrics:
            await _record(uow, job, u.attempt, u, policy, now)
        transition = job.complete(
            u.attempt, now=now, revision=u.output_revision, metrics=u.metrics, logs_url=u.logs_url
        )
        await announce(uow, job, transition, now=now)
    elif target is JobStatus.FAILED:
        error = u.error or "The worker reported a failure without a message."
        failure_class = u.failure_class or FailureClass.USER_ERROR
        if job.status is JobStatus.PENDING:
            transition = job.fail_pending(error=error, failure_class=failure_class, now=now)
        else:
            transition = job.fail(
                u.attempt, error=error, failure_class=failure_class, retryable=u.retryable, now=now
            )
        await announce(uow, job, transition, now=now)
    else:
        # pending and cancelled are not a worker's to set: a user cancels, the watchdog requeues.
        raise IllegalTransition(job.status, target)
    await uow.jobs.save(job)
    return job


async def _record(
    uow: UnitOfWork, job: Job, attempt: int | None, u: WorkerUpdate, policy: Policy, now: datetime
) -> None:
    job.check_attempt(attempt)
    heartbeat = _heartbeat(job, u)
    job.record_progress(heartbeat.attempt, progress_of(heartbeat), now=now, lease=policy.lease)
    await uow.events.add_many([progress_row(job, heartbeat)])


async def pending_jobs(
    uow: UnitOfWork, *, job_type: JobType | None, provider: GPUProvider | None, limit: int
) -> list[Job]:
    flt = JobFilter(
        user_id=None, status=JobStatus.PENDING, job_type=job_type, gpu_provider=provider
    )
    # Oldest first: the queue order a polling worker expects.
    return await uow.jobs.search(flt, limit=limit, oldest_first=True)
