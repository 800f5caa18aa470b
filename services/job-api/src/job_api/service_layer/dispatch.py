"""The dispatch protocol: claims, worker events (progress, failure, completion), the lease
watchdog and worker presence. Every path goes through the aggregate, so the state machine and the
attempt fencing hold whichever way a worker talks to us (broker or the brief's HTTP API)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog

from contracts.enums import CancelReason, GPUProvider, JobStatus, JobType
from contracts.events import (
    DatasetDeleted,
    DatasetValidated,
    EventPayload,
    JobCancelRequested,
    JobFailed,
    JobProgress,
    JobRequeued,
    ModelCompleted,
)
from contracts.rpc import ClaimJob, ClaimRefusal, ClaimReply, DataTicket, JobSpec
from job_api.domain.errors import DomainError, ProgressWentBackwards, StaleAttempt
from job_api.domain.job import Job, Progress
from job_api.service_layer.announce import announce, status_row
from job_api.service_layer.unit_of_work import Policy, UnitOfWork
from servicekit.tickets import mint_data_ticket

log = structlog.get_logger(__name__)


def data_ticket(job: Job, policy: Policy) -> DataTicket:
    if job.dataset_id is None:
        return DataTicket(url=job.training_data_url)
    token, expires_at = mint_data_ticket(
        policy.data_ticket_secret,
        dataset_id=job.dataset_id,
        job_id=job.id,
        attempt=job.attempt,
        ttl=policy.data_ticket_ttl,
    )
    url = f"{policy.public_base_url}/api/finetune/datasets/{job.dataset_id}/download?ticket={token}"
    return DataTicket(url=url, expires_at=expires_at)


def job_spec(job: Job, policy: Policy) -> JobSpec:
    assert job.lease_expires_at is not None
    return JobSpec(
        job_id=job.id,
        attempt=job.attempt,
        job_type=job.job_type,
        base_model=job.base_model,
        output_model=job.output_model,
        hyperparameters=job.hyperparameters,
        data=data_ticket(job, policy),
        lease_seconds=policy.lease.total_seconds(),
        lease_expires_at=job.lease_expires_at,
    )


def _refuse(refusal: ClaimRefusal, message: str) -> ClaimReply:
    return ClaimReply(granted=False, refusal=refusal, message=message)


async def claim_job(uow: UnitOfWork, cmd: ClaimJob, policy: Policy, *, now: datetime) -> ClaimReply:
    if cmd.expires_at < now:
        return _refuse(ClaimRefusal.EXPIRED, "The claim request expired before it was read.")
    job = await uow.jobs.get(cmd.job_id, for_update=True)
    if job is None:
        return _refuse(ClaimRefusal.NOT_FOUND, f"Job {cmd.job_id} does not exist.")
    if job.job_type not in cmd.job_types or job.gpu_provider is not cmd.provider:
        return _refuse(
            ClaimRefusal.WRONG_ROUTE,
            f"Job {job.id} is a {job.job_type} job for {job.gpu_provider}.",
        )
    if job.is_same_claim(cmd.worker_id, cmd.claim_id):
        return ClaimReply(granted=True, job=job_spec(job, policy))
    if job.status is not JobStatus.PENDING:
        return _refuse(ClaimRefusal.NOT_PENDING, f"Job {job.id} is {job.status}.")
    transition = job.claim(
        worker_id=cmd.worker_id, claim_id=cmd.claim_id, now=now, lease=policy.lease
    )
    await uow.jobs.save(job)
    await announce(uow, job, transition, now=now)
    log.info("job.claimed", job_id=str(job.id), attempt=job.attempt, worker_id=cmd.worker_id)
    return ClaimReply(granted=True, job=job_spec(job, policy))


def progress_of(p: JobProgress) -> Progress:
    return Progress(
        progress=p.progress,
        phase=p.phase,
        step=p.step,
        total_steps=p.total_steps,
        epoch=p.epoch,
        loss=p.loss,
        metrics=p.metrics,
        eta_seconds=p.eta_seconds,
        logs_url=p.logs_url,
    )


def progress_row(job: Job, p: JobProgress) -> dict[str, Any]:
    data = p.model_dump(mode="json", exclude={"job_id", "attempt"}, exclude_none=True)
    return {
        "job_id": job.id,
        "user_id": job.user_id,
        "attempt": p.attempt,
        "kind": "progress",
        "data": data,
    }


@dataclass
class WorkerEventOutcome:
    applied: int = 0
    stale: int = 0
    unknown_job: int = 0


async def apply_worker_events(
    uow: UnitOfWork, payloads: Sequence[EventPayload], policy: Policy, *, now: datetime
) -> WorkerEventOutcome:
    """Apply a batch of events from workers and data-service in one transaction."""
    outcome = WorkerEventOutcome()
    job_ids = [
        p.job_id for p in payloads if isinstance(p, JobProgress | JobFailed | ModelCompleted)
    ]
    jobs = await uow.jobs.get_many_for_update(job_ids)
    changed: dict[UUID, Job] = {}
    rows: list[dict[str, Any]] = []
    stale: dict[tuple[UUID, int], None] = {}
    for payload in payloads:
        if isinstance(payload, DatasetValidated):
            await uow.datasets.upsert(
                dataset_id=payload.dataset_id,
                user_id=payload.user_id,
                job_types=[str(t) for t in payload.job_types],
                filename=payload.filename,
                rows=payload.rows,
            )
            continue
        if isinstance(payload, DatasetDeleted):
            await uow.datasets.mark_deleted(payload.dataset_id, payload.user_id)
            continue
        if not isinstance(payload, JobProgress | JobFailed | ModelCompleted):
            continue
        job = jobs.get(payload.job_id)
        if job is None:
            outcome.unknown_job += 1
            log.warning(
                "worker_event.unknown_job",
                job_id=str(payload.job_id),
                event_type=payload.event_type,
            )
            continue
        try:
            if isinstance(payload, JobProgress):
                try:
                    job.record_progress(
                        payload.attempt, progress_of(payload), now=now, lease=policy.lease
                    )
                except ProgressWentBackwards:
                    log.info("job.progress_backwards", job_id=str(job.id), attempt=payload.attempt)
                rows.append(progress_row(job, payload))
            elif isinstance(payload, JobFailed):
                transition = job.fail(
                    payload.attempt,
                    error=payload.error,
                    failure_class=payload.failure_class,
                    retryable=payload.retryable,
                    now=now,
                )
                await announce(uow, job, transition, now=now)
            else:
                transition = job.complete(
                    payload.attempt,
                    now=now,
                    revision=payload.revision,
                    metrics=payload.metrics,
                    logs_url=payload.logs_url,
                )
                await announce(uow, job, transition, now=now)
        except StaleAttempt:
            outcome.stale += 1
            stale[(job.id, payload.attempt)] = None
            log.info(
                "worker_event.stale",
                job_id=str(job.id),
                attempt=payload.attempt,
                current=job.attempt,
                status=str(job.status),
                event_type=payload.event_type,
            )
            continue
        except DomainError as exc:
            log.warning("worker_event.refused", job_id=str(job.id), code=exc.code, error=str(exc))
            continue
        outcome.applied += 1
        changed[job.id] = job
    await uow.jobs.save_many(list(changed.values()))
    await uow.events.add_many(rows)
    if stale:
        await uow.publish(
            *(
                JobCancelRequested(
                    job_id=job_id, attempt=attempt, reason=CancelReason.STALE_ATTEMPT
                )
                for job_id, attempt in stale
            )
        )
    return outcome


async def expire_leases(uow: UnitOfWork, *, now: datetime, limit: int = 100) -> list[Job]:
    expired = await uow.jobs.expired_leases(now, limit=limit)
    for job in expired:
        transition = job.expire_lease(now=now)
        await uow.jobs.save(job)
        await announce(uow, job, transition, now=now)
        log.warning(
            "job.lease_expired",
            job_id=str(job.id),
            attempt=transition.attempt,
            to_status=str(job.status),
        )
    return expired


async def redispatch_stale(
    uow: UnitOfWork, policy: Policy, *, now: datetime, limit: int = 100
) -> list[Job]:
    jobs = await uow.jobs.undispatched_since(now - policy.redispatch_after, limit=limit)
    for job in jobs:
        job.redispatch(now=now)
        await uow.jobs.save(job)
        await uow.publish(
            JobRequeued(
                job_id=job.id,
                job_type=job.job_type,
                gpu_provider=job.gpu_provider,
                previous_attempt=job.attempt,
                reason="redispatch",
            )
        )
        log.info("job.redispatched", job_id=str(job.id), attempt=job.attempt)
    return jobs


async def mark_worker_presence(
    uow: UnitOfWork, route: tuple[JobType, GPUProvider], *, has_worker: bool, now: datetime
) -> int:
    changed = 0
    for job in await uow.jobs.pending_on_route(*route):
        if job.mark_worker_presence(has_worker=has_worker, now=now):
            await uow.jobs.save(job)
            reason = "worker_available" if has_worker else "no_worker"
            await uow.events.add_many([status_row(job, None, reason=reason)])
            changed += 1
    return changed
