"""Every event that crosses a service boundary, in a CloudEvents-shaped envelope
(contracts.envelope).

A payload class names its wire `type` and builds its routing key. Consumers validate on receipt,
ignore fields they do not know (payloads are versioned by `dataversion`) and dead-letter what they
cannot parse. The worker's reports are contracts.worker_reports'; this module names them all
(`EVENT_TYPES`).
"""

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from contracts.catalogue import HardwareClass
from contracts.enums import (
    CancelReason,
    FailureClass,
    GPUProvider,
    JobPhase,
    JobStatus,
    JobType,
    ModelStore,
    WorkerPool,
)
from contracts.envelope import (
    Envelope,
    EventPayload,
    Trace,
    current_trace,
    reset_trace,
    set_trace,
    traced,
    within,
)
from contracts.routing import offer_routing_key
from contracts.worker_reports import (
    MAX_CLAIM_SECRET_CHARS,
    MAX_ERROR_CHARS,
    MAX_LOG_LINE_CHARS,
    MAX_LOG_LINES,
    JobFailed,
    JobProgress,
    ModelPushed,
    WorkerHeartbeat,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_CLAIM_SECRET_CHARS",
    "MAX_ERROR_CHARS",
    "MAX_LOG_LINES",
    "MAX_LOG_LINE_CHARS",
    "DatasetDeleted",
    "DatasetValidated",
    "Envelope",
    "EventPayload",
    "JobCancelRequested",
    "JobClaimed",
    "JobCreated",
    "JobFailed",
    "JobProgress",
    "JobRequeued",
    "JobStatusChanged",
    "ModelCompleted",
    "ModelDeleted",
    "ModelDeployed",
    "ModelPushed",
    "Trace",
    "WorkerHeartbeat",
    "current_trace",
    "payload_of",
    "reset_trace",
    "set_trace",
    "traced",
    "within",
]


HARDWARE_CLASS_TEXT = (
    "What the job needs to train (its base model's class, fixed at creation): part of the "
    "offer's route, so only a worker whose hardware satisfies it is offered the job."
)


class JobCreated(EventPayload):
    event_type: ClassVar[str] = "job.created"
    must_route: ClassVar[bool] = True

    job_id: UUID
    user_id: str
    project_id: str | None = None
    job_type: JobType
    gpu_provider: GPUProvider
    base_model: str
    output_model: str
    dataset_id: UUID | None = Field(
        default=None, description="Set when the data is an uploaded dataset."
    )
    hyperparameters: dict[str, Any]
    created_at: datetime
    worker_pool: WorkerPool = Field(
        default=WorkerPool.SHARED, description="Which workers may take it."
    )
    owner_pool: str | None = Field(
        default=None, description="The owner's private pool key, when `worker_pool` includes it."
    )
    hardware_class: HardwareClass = Field(
        default=HardwareClass.CPU, description=HARDWARE_CLASS_TEXT
    )

    def routing_key(self) -> str:
        return _offer_key(self)


class JobRequeued(EventPayload):
    """A running job went back to pending (lease expired or a retryable failure)."""

    event_type: ClassVar[str] = "job.requeued"
    must_route: ClassVar[bool] = True

    job_id: UUID
    job_type: JobType
    gpu_provider: GPUProvider
    previous_attempt: int
    reason: str
    worker_pool: WorkerPool = WorkerPool.SHARED
    owner_pool: str | None = None
    hardware_class: HardwareClass = Field(
        default=HardwareClass.CPU, description=HARDWARE_CLASS_TEXT
    )

    def routing_key(self) -> str:
        return _offer_key(self)


def _offer_key(offer: JobCreated | JobRequeued) -> str:
    """An offer's route: the workers whose queues match its type, provider, pool and hardware."""
    return offer_routing_key(
        offer.event_type,
        offer.job_type,
        offer.gpu_provider,
        offer.worker_pool,
        offer.owner_pool,
        offer.hardware_class,
    )


class JobClaimed(EventPayload):
    event_type: ClassVar[str] = "job.claimed"

    job_id: UUID
    user_id: str
    attempt: int
    worker_id: str
    lease_expires_at: datetime


class ModelCompleted(EventPayload):
    """Published by job-api after fencing, exactly one per completed job (never a stale attempt's):
    the event registry-service registers a model version on."""

    event_type: ClassVar[str] = "model.completed"
    # The registry's only way to hear of a model: never dropped for want of a bound queue (the
    # relay keeps it and retries until registry-service has declared its queue).
    must_route: ClassVar[bool] = True

    job_id: UUID
    user_id: str
    project_id: str | None = None
    attempt: int = Field(ge=1)
    job_type: JobType
    base_model: str
    output_model: str
    repo_id: str
    revision: str
    store: ModelStore
    uri: str = Field(
        description=(
            "Where to load it: `hf://owner/name@rev` (the Hub), `local://owner/name@rev` (a "
            "worker's local model store: `<store>/<owner key>/owner/name/rev/`, resolved by the "
            "server that loads it against its own store folder; contracts.store), "
            "`s3://bucket/key`. Never a path on a machine."
        ),
    )
    metrics: dict[str, float] = Field(default_factory=dict)
    baseline_metrics: dict[str, float] = Field(default_factory=dict)
    data_stats: dict[str, Any] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    dataset_id: UUID | None = None
    completed_at: datetime
    created_repo: bool = Field(
        default=False,
        description="The worker's push created the repository for this job's owner.",
    )


class JobCancelRequested(EventPayload):
    """Tells the worker holding `attempt` (or any attempt when null) to stop within one step.

    With `claim_secret_sha256` it is for one sender only: a worker whose claim secret does not hash
    to it ignores the notice. job-api sets it when a report named the current attempt with a wrong
    secret, so that sender is told to stop while the attempt's real holder trains on."""

    event_type: ClassVar[str] = "job.cancel_requested"

    job_id: UUID
    attempt: int | None = None
    reason: CancelReason
    claim_secret_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="sha256 (hex) of the secret it is for."
    )

    def routing_key(self) -> str:
        return f"{self.event_type}.{self.job_id}"


class JobStatusChanged(EventPayload):
    event_type: ClassVar[str] = "job.status_changed"

    job_id: UUID
    user_id: str
    from_status: JobStatus | None
    to_status: JobStatus
    attempt: int
    phase: JobPhase | None = None
    failure_class: FailureClass | None = None
    error: str | None = None
    dataset_id: UUID | None = None


class ModelDeployed(EventPayload):
    event_type: ClassVar[str] = "model.deployed"

    model_id: UUID
    job_id: UUID | None = None
    user_id: str
    repo_id: str
    revision: str | None = None
    job_type: JobType
    deployed: bool = Field(description="True on deploy, false on undeploy.")
    deployed_at: datetime


class ModelDeleted(EventPayload):
    event_type: ClassVar[str] = "model.deleted"

    model_id: UUID
    user_id: str
    repo_id: str
    version: int = Field(ge=1, description="The registry's version number of the model.")

    def subject(self) -> str | None:
        return str(self.model_id)


class DatasetValidated(EventPayload):
    event_type: ClassVar[str] = "dataset.validated"
    # job-api learns of an upload only from this: kept and retried until job-api's queue exists.
    must_route: ClassVar[bool] = True

    dataset_id: UUID
    user_id: str
    filename: str
    format: Literal["csv", "jsonl"]
    job_types: list[JobType] = Field(description="Job types whose format this file satisfies.")
    rows: int = Field(ge=0)
    size_bytes: int = Field(ge=0)
    sha256: str
    estimated_tokens: int | None = Field(
        default=None,
        ge=0,
        description="Rough token count of the file's text (about four characters per token), "
        "from the upload's validation report; None from producers that do not count.",
    )

    def subject(self) -> str | None:
        return str(self.dataset_id)


class DatasetDeleted(EventPayload):
    event_type: ClassVar[str] = "dataset.deleted"

    dataset_id: UUID
    user_id: str
    reason: str

    def subject(self) -> str | None:
        return str(self.dataset_id)


EVENT_TYPES: dict[str, type[EventPayload]] = {
    cls.event_type: cls
    for cls in (
        JobCreated,
        JobRequeued,
        JobClaimed,
        JobProgress,
        JobFailed,
        ModelPushed,
        WorkerHeartbeat,
        ModelCompleted,
        JobCancelRequested,
        JobStatusChanged,
        ModelDeployed,
        ModelDeleted,
        DatasetValidated,
        DatasetDeleted,
    )
}


def payload_of(envelope: Envelope) -> EventPayload:
    """The envelope's typed payload. Raises KeyError for an unknown type, ValidationError for bad
    data."""
    return EVENT_TYPES[envelope.type].model_validate(envelope.data)
