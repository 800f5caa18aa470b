"""Turns a transition of the aggregate into the events it implies (outbox) and a history row."""

from datetime import datetime
from typing import Any

from contracts.enums import CancelReason, JobStatus
from contracts.events import (
    EventPayload,
    JobCancelRequested,
    JobClaimed,
    JobCreated,
    JobRequeued,
    JobStatusChanged,
    ModelCompleted,
)
from job_api.domain.job import Job, Transition
from job_api.service_layer.unit_of_work import UnitOfWork


def status_row(
    job: Job, transition: Transition | None, *, reason: str | None = None
) -> dict[str, Any]:
    """A history row for a status change, or (no transition) for the job as it stands now."""
    return {
        "job_id": job.id,
        "user_id": job.user_id,
        "attempt": job.attempt,
        "kind": "status",
        "data": {
            "from_status": str(transition.from_status) if transition else None,
            "to_status": str(job.status),
            "attempt": transition.attempt if transition else job.attempt,
            "reason": reason or (transition.reason if transition else "created"),
            "phase": str(job.phase),
            "error": job.error,
            "failure_class": str(job.failure_class) if job.failure_class else None,
        },
    }


def created_events(job: Job) -> list[EventPayload]:
    return [
        JobCreated(
            job_id=job.id,
            user_id=job.user_id,
            project_id=job.project_id,
            job_type=job.job_type,
            gpu_provider=job.gpu_provider,
            base_model=job.base_model,
            output_model=job.output_model,
            dataset_id=job.dataset_id,
            hyperparameters=job.hyperparameters,
            created_at=job.created_at,
            worker_pool=job.worker_pool,
            owner_pool=job.owner_pool,
            hardware_class=job.hardware_class,
        ),
        JobStatusChanged(
            job_id=job.id,
            user_id=job.user_id,
            from_status=None,
            to_status=JobStatus.PENDING,
            attempt=0,
            phase=job.phase,
            dataset_id=job.dataset_id,
        ),
    ]


def requeued_event(job: Job, *, previous_attempt: int, reason: str | None) -> JobRequeued:
    """The offer of a pending job to the pool(s) it targets, again."""
    return JobRequeued(
        job_id=job.id,
        job_type=job.job_type,
        gpu_provider=job.gpu_provider,
        previous_attempt=previous_attempt,
        reason=reason or "requeued",
        worker_pool=job.worker_pool,
        owner_pool=job.owner_pool,
        hardware_class=job.hardware_class,
    )


def transition_events(job: Job, t: Transition, *, now: datetime) -> list[EventPayload]:
    events: list[EventPayload] = [
        JobStatusChanged(
            job_id=job.id,
            user_id=job.user_id,
            from_status=t.from_status,
            to_status=t.to_status,
            attempt=t.attempt,
            phase=job.phase,
            failure_class=job.failure_class,
            error=job.error,
            dataset_id=job.dataset_id,
        )
    ]
    if t.to_status is JobStatus.RUNNING:
        assert job.worker_id is not None
        assert job.lease_expires_at is not None
        events.append(
            JobClaimed(
                job_id=job.id,
                user_id=job.user_id,
                attempt=job.attempt,
                worker_id=job.worker_id,
                lease_expires_at=job.lease_expires_at,
            )
        )
    elif t.to_status is JobStatus.COMPLETED:
        # The one model.completed of the job, published after fencing: subscribers (the
        # registry) never see a stale attempt's model.
        assert t.model is not None, "a completion names the pushed model"
        events.append(
            ModelCompleted(
                job_id=job.id,
                user_id=job.user_id,
                project_id=job.project_id,
                attempt=t.attempt,
                job_type=job.job_type,
                base_model=job.base_model,
                output_model=job.output_model,
                repo_id=t.model.repo_id,
                revision=t.model.revision,
                store=t.model.store,
                uri=t.model.uri,
                metrics=job.metrics,
                baseline_metrics=t.model.baseline_metrics,
                data_stats=t.model.data_stats,
                hyperparameters=job.hyperparameters,
                dataset_id=job.dataset_id,
                completed_at=now,
                created_repo=t.model.created_repo,
            )
        )
    elif t.to_status is JobStatus.PENDING:
        if job.retry_at is None:
            # With a back-off (retry_at) the offer waits: the watchdog publishes it when due.
            events.append(requeued_event(job, previous_attempt=t.attempt, reason=t.reason))
        # The worker that lost the lease may be alive behind a partition: tell it to stop.
        reason = (
            CancelReason.WORKER_REVOKED
            if t.reason == "worker_revoked"
            else CancelReason.LEASE_EXPIRED
        )
        events.append(JobCancelRequested(job_id=job.id, attempt=t.attempt, reason=reason))
    elif t.to_status is JobStatus.CANCELLED and t.from_status is JobStatus.RUNNING:
        events.append(
            JobCancelRequested(job_id=job.id, attempt=t.attempt, reason=CancelReason.USER)
        )
    return events


async def announce(
    uow: UnitOfWork, job: Job, t: Transition, *, now: datetime, save: bool = False
) -> bool:
    """Stage the transition's events and history row; with `save`, also save the job (loaded
    under lock) in the same statement. False only when an optimistic unit's save found the row
    changed since it was read: then nothing was written."""
    events = transition_events(job, t, now=now)
    if save:
        return await uow.save_and_publish(job, *events, history=[status_row(job, t)])
    await uow.publish(*events, history=[status_row(job, t)])
    return True
