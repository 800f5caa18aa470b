"""The Job aggregate.

Status follows `pending → running → completed | failed | cancelled`, `pending → cancelled` and
`running → pending` (lease expired or retryable failure; the next claim is attempt + 1). `attempt`
counts granted claims and is the fencing token. A report acts on the job only when its
`Credential` is the holder's: the running attempt, and the claim secret granted with it (broker
claims) or the worker id that claimed it (the brief's HTTP API, which has no secret).
"""

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from contracts.catalogue import HardwareClass
from contracts.enums import FailureClass, GPUProvider, JobPhase, JobStatus, JobType, WorkerPool
from contracts.routing import SHARED_POOL
from job_api.domain.errors import AlreadyClaimed, IllegalTransition, StaleAttempt
from job_api.domain.job_values import (
    ALLOWED,
    MAX_BACKOFF,
    Credential,
    Progress,
    PushedModel,
    Transition,
    hash_claim_secret,
)

# The values are the aggregate's vocabulary: importable from here with it.
__all__ = [
    "ALLOWED",
    "MAX_BACKOFF",
    "Credential",
    "Job",
    "Progress",
    "PushedModel",
    "Transition",
    "hash_claim_secret",
]


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
    # sha256 of the claim secret granted with the current attempt (broker claims only).
    claim_secret_hash: str | None = None
    # The job types the holder serves (from its claim): while it trains it consumes no queue,
    # yet its routes have a worker. An HTTP worker serves the type of the job it holds.
    worker_job_types: list[JobType] | None = None
    lease_expires_at: datetime | None = None
    output_revision: str | None = None
    started_at: datetime | None = None
    dispatched_at: datetime | None = None
    completed_at: datetime | None = None
    worker_pool: WorkerPool = WorkerPool.SHARED
    # The owner's private pool key (contracts.routing.pool_key) when worker_pool includes it.
    owner_pool: str | None = None
    # After a retryable failure: when the job is offered again (None: offered already).
    retry_at: datetime | None = None
    # What it needs to train (its base model's, contracts.catalogue), fixed at creation: part of
    # its offers' route, and a claim by a worker that does not satisfy it is refused.
    hardware_class: HardwareClass = HardwareClass.CPU

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

    def is_claimable(self) -> bool:
        return self.status is JobStatus.PENDING

    def routable_to(self, pool: str, provider: GPUProvider | None) -> bool:
        """Whether a worker of `pool` (SHARED_POOL or a private pool key) may take this job. The
        shared pool serves its job's provider only (`provider` None: any, the brief's HTTP worker);
        a private pool serves its owner's jobs whatever the provider."""
        if pool == SHARED_POOL:
            return self.worker_pool is not WorkerPool.PRIVATE and (
                provider is None or provider is self.gpu_provider
            )
        return self.worker_pool is not WorkerPool.SHARED and self.owner_pool == pool

    def holds(self, attempt: int) -> bool:
        """Whether `attempt` is the running attempt."""
        return self.status is JobStatus.RUNNING and attempt == self.attempt

    def check_holder(self, who: Credential) -> None:
        """Fencing: only the holder of the running attempt may act on the job. Raises
        StaleAttempt with the actual reason."""
        if self.status is JobStatus.PENDING:
            raise StaleAttempt(
                f"Job {self.id} is pending: no attempt holds it; claim it before reporting."
                if self.attempt == 0
                else f"Job {self.id} is pending again (attempt {self.attempt} ended); "
                f"{'attempt ' + str(who.attempt) if who.attempt else 'the sender'} no longer "
                "holds it.",
                current=self.attempt,
                presented=who.attempt,
            )
        if self.status is not JobStatus.RUNNING:
            attempt = who.attempt if who.attempt is not None else self.attempt
            raise StaleAttempt(
                f"Job {self.id} is {self.status}; attempt {attempt} no longer holds it.",
                current=self.attempt,
                presented=who.attempt,
            )
        if who.attempt is not None and who.attempt != self.attempt:
            raise StaleAttempt(
                f"Job {self.id} is held by attempt {self.attempt}; "
                f"attempt {who.attempt} no longer holds it.",
                current=self.attempt,
                presented=who.attempt,
            )
        if who.secret_hash is not None:
            if self.claim_secret_hash is None or not hmac.compare_digest(
                who.secret_hash, self.claim_secret_hash
            ):
                raise StaleAttempt(
                    f"Job {self.id}: the claim secret is not the one granted to attempt "
                    f"{self.attempt}.",
                    current=self.attempt,
                    presented=who.attempt,
                )
            return
        # The HTTP path: no secret, so the job must have been claimed over HTTP, by this worker.
        if self.claim_secret_hash is not None:
            raise StaleAttempt(
                f"Job {self.id} was claimed over the broker (attempt {self.attempt}); only that "
                "worker, with its claim secret, may report on it.",
                current=self.attempt,
                presented=who.attempt,
            )
        if who.worker_id != self.worker_id:
            raise StaleAttempt(
                f"Job {self.id} is held by worker {self.worker_id} (attempt {self.attempt}), "
                f"not by {who.worker_id}.",
                current=self.attempt,
                presented=who.attempt,
            )

    def claim(
        self,
        *,
        worker_id: str,
        claim_id: UUID | None,
        now: datetime,
        lease: timedelta,
        secret_hash: str | None = None,
        serves: Sequence[JobType] = (),
    ) -> Transition:
        """Grant the next attempt. `secret_hash`: the hash of the claim secret (broker claims);
        `serves`: the job types the claiming worker takes (at least this job's)."""
        transition = self._move(JobStatus.RUNNING, now, "claimed")
        self.attempt += 1
        transition = Transition(
            transition.from_status, transition.to_status, self.attempt, "claimed"
        )
        self.worker_id = worker_id
        self.claim_id = claim_id
        self.claim_secret_hash = secret_hash
        self.worker_job_types = sorted({self.job_type, *serves})
        self.lease_expires_at = now + lease
        self.phase = JobPhase.CLAIMED
        self.progress = 0.0
        self.step = None
        self.eta_seconds = None
        self.error = None
        self.failure_class = None
        self.retry_at = None
        if self.started_at is None:
            self.started_at = now
        return transition

    def claim_over_http(
        self, *, worker_id: str, now: datetime, lease: timedelta
    ) -> Transition | None:
        """The brief's `PATCH {"status": "running"}`: a compare-and-set on a pending job. None when
        this worker already holds it over HTTP (a retried request); AlreadyClaimed when another
        does (or a broker worker), IllegalTransition when the job has ended."""
        if self.status is JobStatus.RUNNING:
            if self.claim_secret_hash is None and self.worker_id == worker_id:
                return None
            raise AlreadyClaimed(self.id, self.attempt, self.worker_id)
        return self.claim(worker_id=worker_id, claim_id=None, now=now, lease=lease)

    def rotate_claim_secret(self, secret_hash: str) -> None:
        """A retried broker claim (its reply was lost): the new reply carries a new secret."""
        self.claim_secret_hash = secret_hash

    def is_same_claim(self, worker_id: str, claim_id: UUID) -> bool:
        """A retried claim request (its reply was lost) from the worker that already holds the job."""
        return (
            self.status is JobStatus.RUNNING
            and self.worker_id == worker_id
            and self.claim_id == claim_id
        )

    def record_progress(
        self, who: Credential, update: Progress, *, now: datetime, lease: timedelta
    ) -> bool:
        """Apply a heartbeat from the holder (else StaleAttempt): the lease is renewed, always.
        Progress never goes backwards within an attempt: a report behind the current progress (a
        late or reordered one) renews the lease and changes nothing else. Returns whether the
        report's progress was taken."""
        self.check_holder(who)
        self.lease_expires_at = now + lease
        self.updated_at = now
        if update.progress < self.progress:
            return False
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
        return True

    def complete(
        self,
        who: Credential,
        *,
        now: datetime,
        model: PushedModel,
        logs_url: str | None = None,
    ) -> Transition:
        self.check_holder(who)
        transition = self._move(JobStatus.COMPLETED, now, "model_completed")
        self.progress = 100.0
        self.phase = JobPhase.DONE
        self.output_revision = model.revision
        if model.metrics:
            self.metrics = {**self.metrics, **model.metrics}
        if logs_url:
            self.logs_url = logs_url
        return Transition(
            transition.from_status,
            transition.to_status,
            transition.attempt,
            transition.reason,
            model=model,
        )

    def fail(
        self,
        who: Credential,
        *,
        error: str,
        failure_class: FailureClass,
        retryable: bool,
        now: datetime,
        backoff: timedelta = timedelta(0),
    ) -> Transition:
        """A worker's failure report: requeue a retryable one while attempts remain (offered again
        after `backoff`, doubled per attempt so far, at most MAX_BACKOFF), else fail."""
        self.check_holder(who)
        if retryable and self.attempt < self.max_attempts:
            transition = self._requeue(
                now, error=error, failure_class=failure_class, reason="retryable_failure"
            )
            delay = min(backoff * (2 ** (self.attempt - 1)), MAX_BACKOFF)
            if delay > timedelta(0):
                self.retry_at = now + delay
            return transition
        return self._fail(now, error=error, failure_class=failure_class)

    def release_holder(self, *, now: datetime, reason: str) -> Transition:
        """The holder's credential was revoked: its attempt ends now (requeued while attempts
        remain, as an expired lease would be), without waiting for the lease."""
        if self.status is not JobStatus.RUNNING:
            raise IllegalTransition(self.status, JobStatus.PENDING)
        error = f"The worker holding attempt {self.attempt} was revoked."
        if self.attempt < self.max_attempts:
            return self._requeue(
                now, error=error, failure_class=FailureClass.INFRA_ERROR, reason=reason
            )
        return self._fail(
            now, error=f"{error} No attempts left.", failure_class=FailureClass.INFRA_ERROR
        )

    def offer_due(self, now: datetime) -> bool:
        """A requeued job waiting out its back-off is offered once its time has come."""
        return (
            self.status is JobStatus.PENDING and self.retry_at is not None and self.retry_at <= now
        )

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
        delivery limit, purged), or its back-off is over. Duplicate offers are harmless: only a
        pending job is granted."""
        if self.status is not JobStatus.PENDING:
            raise IllegalTransition(self.status, JobStatus.PENDING)
        self.dispatched_at = now
        self.updated_at = now
        self.retry_at = None

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
        self.claim_secret_hash = None
        self.lease_expires_at = None
        self.eta_seconds = None
        self.retry_at = None
        return transition

    def _fail(self, now: datetime, *, error: str, failure_class: FailureClass) -> Transition:
        transition = self._move(JobStatus.FAILED, now, "failed")
        self.error = error
        self.failure_class = failure_class
        return transition
