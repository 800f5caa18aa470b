"""The Job aggregate.

Status follows `pending → running → completed | failed | cancelled`, `pending → cancelled` and
`running → pending` (lease expired or retryable failure; the next claim is attempt + 1). `attempt`
counts granted claims and is the fencing token: anything presented with another attempt is stale.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from contracts.enums import FailureClass, GPUProvider, JobPhase, JobStatus, JobType
from job_api.domain.errors import IllegalTransition, ProgressWentBackwards, StaleAttempt

S = JobStatus
ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    S.PENDING: frozenset({S.RUNNING, S.CANCELLED, S.FAILED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.PENDING}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class Transition:
    """A status change the aggregate made; the service layer turns it into events."""

    from_status: JobStatus
    to_status: JobStatus
    attempt: int
    reason: str | None = None


@dataclass
class Progress:
    progress: float
    phase: JobPhase = JobPhase.TRAINING
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    eta_seconds: float | None = None
    logs_url: str | None = None


@dataclass
class Job:
    id: UUID
    user_id: str
    job_type: JobType
    base_model: str
    training_data_url: str
    output_model: str
    gpu_provider: GPUProvider
    hyperparameters: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    project_id: str | None = None
    dataset_id: UUID | None = None
    status: JobStatus = JobStatus.PENDING
    phase: JobPhase = JobPhase.QUEUED
    progress: float = 0.0
    error: str | None = None
    failure_class: FailureClass | None = None
    logs_url: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    eta_seconds: float | None = None
    attempt: int = 0
    max_attempts: int = 3
    worker_id: str | None = None
    claim_id: UUID | None = None
    lease_expires_at: datetime | None = None
    output_revision: str | None = None
    started_at: datetime | None = None
    dispatched_at: datetime | None = None
    completed_at: datetime | None = None

    def _move(self, target: JobStatus, now: datetime, reason: str | None = None) -> Transition:
        if target not in ALLOWED[self.status]:
            raise IllegalTransition(self.status, target)
        transition = Transition(self.status, target, self.attempt, reason)
        self.status = target
        self.updated_at = now
        if target.is_terminal:
            self.completed_at = now
            self.lease_expires_at = None
            self.eta_seconds = None
        return transition

    def check_attempt(self, attempt: int | None) -> None:
        """Fencing: only the attempt that holds the job may act on it. None means 'the current one'
        (the brief's HTTP worker API does not send attempts)."""
        if self.status is not JobStatus.RUNNING:
            raise StaleAttempt(self.attempt, attempt if attempt is not None else self.attempt)
        if attempt is not None and attempt != self.attempt:
            raise StaleAttempt(self.attempt, attempt)

    def claim(
        self, *, worker_id: str, claim_id: UUID | None, now: datetime, lease: timedelta
    ) -> Transition:
        transition = self._move(JobStatus.RUNNING, now, "claimed")
        self.attempt += 1
        transition = Transition(
            transition.from_status, transition.to_status, self.attempt, "claimed"
        )
        self.worker_id = worker_id
        self.claim_id = claim_id
        self.lease_expires_at = now + lease
        self.phase = JobPhase.CLAIMED
        self.progress = 0.0
        self.step = None
        self.eta_seconds = None
        self.error = None
        self.failure_class = None
        if self.started_at is None:
            self.started_at = now
        return transition

    def is_same_claim(self, worker_id: str, claim_id: UUID) -> bool:
        """A retried claim request (its reply was lost) from the worker that already holds the job."""
        return (
            self.status is JobStatus.RUNNING
            and self.worker_id == worker_id
            and self.claim_id == claim_id
        )

    def record_progress(
        self, attempt: int | None, update: Progress, *, now: datetime, lease: timedelta
    ) -> None:
        """Apply a heartbeat. Raises StaleAttempt, or ProgressWentBackwards (the lease is renewed
        all the same: the worker is alive)."""
        self.check_attempt(attempt)
        self.lease_expires_at = now + lease
        self.updated_at = now
        if update.progress < self.progress:
            raise ProgressWentBackwards(self.progress, update.progress)
        self.progress = update.progress
        self.phase = update.phase
        self.step = update.step if update.step is not None else self.step
        self.total_steps = (
            update.total_steps if update.total_steps is not None else self.total_steps
        )
        self.epoch = update.epoch if update.epoch is not None else self.epoch
        self.eta_seconds = update.eta_seconds
        if update.metrics or update.loss is not None:
            self.metrics = {**self.metrics, **update.metrics}
            if update.loss is not None:
                self.metrics["loss"] = update.loss
        if update.logs_url:
            self.logs_url = update.logs_url

    def complete(
        self,
        attempt: int | None,
        *,
        now: datetime,
        revision: str | None = None,
        metrics: dict[str, float] | None = None,
        logs_url: str | None = None,
    ) -> Transition:
        self.check_attempt(attempt)
        transition = self._move(JobStatus.COMPLETED, now, "model_completed")
        self.progress = 100.0
        self.phase = JobPhase.DONE
        self.output_revision = revision
        if metrics:
            self.metrics = {**self.metrics, **metrics}
        if logs_url:
            self.logs_url = logs_url
        return transition

    def fail(
        self,
        attempt: int | None,
        *,
        error: str,
        failure_class: FailureClass,
        retryable: bool,
        now: datetime,
    ) -> Transition:
        """A worker's failure report: requeue a retryable one while attempts remain, else fail."""
        self.check_attempt(attempt)
        if retryable and self.attempt < self.max_attempts:
            return self._requeue(
                now, error=error, failure_class=failure_class, reason="retryable_failure"
            )
        return self._fail(now, error=error, failure_class=failure_class)

    def fail_pending(self, *, error: str, failure_class: FailureClass, now: datetime) -> Transition:
        """The brief's HTTP worker may report a failure for a job it has not started."""
        if self.status is not JobStatus.PENDING:
            raise IllegalTransition(self.status, JobStatus.FAILED)
        return self._fail(now, error=error, failure_class=failure_class)

    def expire_lease(self, *, now: datetime) -> Transition:
        if self.status is not JobStatus.RUNNING:
            raise IllegalTransition(self.status, JobStatus.PENDING)
        error = f"Worker {self.worker_id} stopped sending heartbeats (attempt {self.attempt})."
        if self.attempt < self.max_attempts:
            return self._requeue(
                now, error=error, failure_class=FailureClass.INFRA_ERROR, reason="lease_expired"
            )
        return self._fail(
            now, error=f"{error} No attempts left.", failure_class=FailureClass.INFRA_ERROR
        )

    def cancel(self, *, now: datetime) -> Transition:
        transition = self._move(JobStatus.CANCELLED, now, "cancelled")
        self.failure_class = FailureClass.CANCELLED
        self.error = "Cancelled by the user."
        return transition

    def mark_worker_presence(self, *, has_worker: bool, now: datetime) -> bool:
        """While pending, say whether any worker consumes this job's queue. Returns True if changed."""
        if self.status is not JobStatus.PENDING:
            return False
        phase = JobPhase.QUEUED if has_worker else JobPhase.NO_WORKER
        if phase == self.phase:
            return False
        self.phase = phase
        self.failure_class = None if has_worker else FailureClass.NO_WORKER
        self.updated_at = now
        return True

    def redispatch(self, *, now: datetime) -> None:
        """Offer a pending job again: its queue message may be gone (dead-lettered after the
        delivery limit, purged). Duplicate offers are harmless: only a pending job is granted."""
        if self.status is not JobStatus.PENDING:
            raise IllegalTransition(self.status, JobStatus.PENDING)
        self.dispatched_at = now
        self.updated_at = now

    def _requeue(
        self, now: datetime, *, error: str, failure_class: FailureClass, reason: str
    ) -> Transition:
        transition = self._move(JobStatus.PENDING, now, reason)
        self.dispatched_at = now
        self.phase = JobPhase.QUEUED
        self.error = error
        self.failure_class = failure_class
        self.worker_id = None
        self.claim_id = None
        self.lease_expires_at = None
        self.eta_seconds = None
        return transition

    def _fail(self, now: datetime, *, error: str, failure_class: FailureClass) -> Transition:
        transition = self._move(JobStatus.FAILED, now, "failed")
        self.error = error
        self.failure_class = failure_class
        return transition
