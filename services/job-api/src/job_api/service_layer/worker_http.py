"""The brief's HTTP worker API (`GET /jobs/pending`, `PATCH /jobs/{id}`), kept for compatibility.

A PATCH becomes the same `Report` the broker path builds and goes through the same handlers
(service_layer.reports): one fencing rule, one set of transitions.

- The caller is a credential: an enrolled worker's token, or (where allowed) the shared key,
  one identity for all its holders. Headers and body fields naming a worker are not believed.
- `status: running` on a pending job its pool may take claims it: a compare-and-set under the row
  lock. The same credential repeating the claim gets the job back (no new attempt, no new data
  ticket); any other gets 409 `already_claimed`.
- Every other update applies only for the holder: the credential that claimed the job over HTTP,
  and, when the body names an `attempt`, that attempt. Otherwise 409 `stale_attempt`, with the
  reason.
- A heartbeat whose progress is behind renews the lease and keeps the higher progress (as on the
  broker path).
"""

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from contracts.enums import FailureClass, GPUProvider, JobPhase, JobStatus, JobType, ModelStore
from contracts.rpc import DataTicket
from job_api.adapters.job_queries import JobFilter
from job_api.domain.errors import IllegalTransition, InsufficientHardware, JobNotFound
from job_api.domain.job import Credential, Job, Progress, PushedModel
from job_api.domain.worker import Worker
from job_api.service_layer.announce import announce
from job_api.service_layer.dispatch import data_ticket
from job_api.service_layer.reports import Completion, Failure, Heartbeat, Report, Reports
from job_api.service_layer.unit_of_work import Policy, UnitOfWork


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


@dataclass(frozen=True)
class Updated:
    job: Job
    # Set only by the request that claimed the job: the one moment a data ticket is minted.
    data: DataTicket | None = None


def _has_progress(u: WorkerUpdate) -> bool:
    return u.progress is not None or bool(u.log_lines or u.metrics) or u.step is not None


def _heartbeat(job: Job, who: Credential, u: WorkerUpdate) -> Heartbeat:
    progress = u.progress if u.progress is not None else job.progress
    history = {
        "worker_id": who.worker_id,
        "progress": progress,
        "phase": str(u.phase or JobPhase.TRAINING),
        "step": u.step,
        "total_steps": u.total_steps,
        "epoch": u.epoch,
        "loss": u.loss,
        "metrics": u.metrics,
        "log_lines": u.log_lines,
        "eta_seconds": u.eta_seconds,
        "logs_url": u.logs_url,
    }
    return Heartbeat(
        job_id=job.id,
        who=who,
        progress=Progress(
            progress=progress,
            phase=u.phase or JobPhase.TRAINING,
            step=u.step,
            total_steps=u.total_steps,
            epoch=u.epoch,
            loss=u.loss,
            metrics=u.metrics,
            eta_seconds=u.eta_seconds,
            logs_url=u.logs_url,
        ),
        history={k: v for k, v in history.items() if v is not None},
    )


def _completion(job: Job, who: Credential, u: WorkerUpdate) -> Completion:
    # The brief's worker pushes to the Hub under the job's output name.
    revision = u.output_revision or "main"
    return Completion(
        job_id=job.id,
        who=who,
        model=PushedModel(
            repo_id=job.output_model,
            revision=revision,
            store=ModelStore.HUB,
            uri=f"hf://{job.output_model}@{revision}",
            metrics=u.metrics,
        ),
        logs_url=u.logs_url,
    )


def _reports(job: Job, who: Credential, u: WorkerUpdate) -> list[Report]:
    target = u.status
    if target is None or target is JobStatus.RUNNING:
        return [_heartbeat(job, who, u)]
    if target is JobStatus.COMPLETED:
        before = [_heartbeat(job, who, u)] if u.log_lines or u.metrics else []
        return [*before, _completion(job, who, u)]
    if target is JobStatus.FAILED:
        return [
            Failure(
                job_id=job.id,
                who=who,
                error=u.error or "The worker reported a failure without a message.",
                failure_class=u.failure_class or FailureClass.USER_ERROR,
                retryable=u.retryable,
            )
        ]
    # pending and cancelled are not a worker's to set: a user cancels, the watchdog requeues.
    raise IllegalTransition(job.status, target)


async def update_job(
    uow: UnitOfWork,
    job_id: UUID,
    u: WorkerUpdate,
    policy: Policy,
    *,
    now: datetime,
    holder: str,
    pool: str,
    enrolled: Worker | None = None,
) -> Updated:
    """`holder`: the calling credential's identity; `pool`: the pool it belongs to (a job its pool
    may not take is not found for it: another pool's jobs are not its business); `enrolled`: the
    enrolled worker calling (None: the shared key), whose advertised hardware a claim must suit."""
    job = await uow.jobs.get(job_id, for_update=True)
    if job is None or not job.routable_to(pool, None):
        raise JobNotFound(job_id)
    worker = holder
    reports = Reports(uow, policy, now=now)
    ticket: DataTicket | None = None
    if u.status is JobStatus.RUNNING and job.status is not JobStatus.RUNNING:
        short = enrolled is not None and not enrolled.satisfies(job.hardware_class)
        if short and job.is_claimable():
            assert enrolled is not None
            need = job.hardware_class.need()
            raise InsufficientHardware(job.id, need, enrolled.gpu_memory_gb)
        transition = job.claim_over_http(worker_id=worker, now=now, lease=policy.lease)
        if transition is not None:
            await announce(uow, job, transition, now=now, save=True)
            ticket = await data_ticket(uow, job, policy)
        if _has_progress(u):
            await reports.apply(job, _heartbeat(job, Credential(worker, job.attempt), u))
    elif u.status is JobStatus.RUNNING:
        # Running already: this worker's repeated claim (a heartbeat), or AlreadyClaimed.
        if job.claim_over_http(worker_id=worker, now=now, lease=policy.lease) is None:
            await reports.apply(job, _heartbeat(job, Credential(worker, u.attempt), u))
    elif u.status is JobStatus.FAILED and job.status is JobStatus.PENDING:
        error = u.error or "The worker reported a failure without a message."
        transition = job.fail_pending(
            error=error, failure_class=u.failure_class or FailureClass.USER_ERROR, now=now
        )
        await announce(uow, job, transition, now=now, save=True)
    else:
        who = Credential(worker, u.attempt)
        for report in _reports(job, who, u):
            await reports.apply(job, report)
    await reports.flush()
    return Updated(job=job, data=ticket)


async def pending_jobs(
    uow: UnitOfWork,
    *,
    pool: str,
    job_type: JobType | None,
    provider: GPUProvider | None,
    limit: int,
) -> list[Job]:
    """The pending jobs a worker of `pool` may take."""
    flt = JobFilter(
        user_id=None,
        status=JobStatus.PENDING,
        job_type=job_type,
        gpu_provider=provider,
        pool=pool,
    )
    # Oldest first: the queue order a polling worker expects.
    return await uow.jobs.search(flt, limit=limit, oldest_first=True)
