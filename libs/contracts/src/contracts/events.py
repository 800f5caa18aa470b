"""Every event that crosses a service boundary, in a CloudEvents-shaped envelope.

A payload class names its wire `type` and builds its routing key. Consumers validate on receipt,
ignore fields they do not know (payloads are versioned by `dataversion`) and dead-letter what they
cannot parse.
"""

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.credentials import sign
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
from contracts.routing import offer_routing_key

MAX_LOG_LINES = 50
MAX_LOG_LINE_CHARS = 2000
MAX_ERROR_CHARS = 4000
MAX_CLAIM_SECRET_CHARS = 200


def claim_secret_field() -> Any:
    """The per-attempt secret from the claim answer. Kept out of repr so it never reaches logs."""
    return Field(
        min_length=1,
        max_length=MAX_CLAIM_SECRET_CHARS,
        repr=False,
        description="The secret granted with the claim (JobSpec.claim_secret) for this attempt.",
    )


class EventPayload(BaseModel):
    """Base of every event's `data`. Unknown fields are ignored so producers can add fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    data_version: ClassVar[int] = 1
    # A job.created that reaches no work queue would wait forever: the relay must not drop it.
    must_route: ClassVar[bool] = False

    def routing_key(self) -> str:
        return self.event_type

    def subject(self) -> str | None:
        job_id = getattr(self, "job_id", None)
        return str(job_id) if job_id is not None else None


class Envelope(BaseModel):
    """CloudEvents 1.0 attribute names; `data` is the typed payload as JSON."""

    model_config = ConfigDict(extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: UUID = Field(
        default_factory=uuid4, description="Unique per event: the consumers' dedupe key."
    )
    type: str = Field(description="Event type, e.g. `job.created`.")
    source: str = Field(description="Producer, e.g. `job-api` or `gpu-worker/<worker id>`.")
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = Field(default=None, description="The job id where there is one.")
    datacontenttype: Literal["application/json"] = "application/json"
    dataversion: int = Field(default=1, description="Version of the payload schema.")
    sequence: int | None = Field(
        default=None,
        ge=1,
        description=(
            "CloudEvents `sequence` extension: increases with each event a producer publishes "
            "about one subject, so a consumer can drop a stale status. Null when not tracked."
        ),
    )
    data: dict[str, Any] = Field(description="The payload; its schema is given by `type`.")

    @classmethod
    def wrap(
        cls,
        payload: EventPayload,
        *,
        source: str,
        event_id: UUID | None = None,
        sequence: int | None = None,
    ) -> "Envelope":
        return cls(
            id=event_id or uuid4(),
            type=payload.event_type,
            source=source,
            subject=payload.subject(),
            dataversion=payload.data_version,
            sequence=sequence,
            data=payload.model_dump(mode="json"),
        )

    def payload(self) -> EventPayload:
        """The typed payload. Raises KeyError for an unknown type, ValidationError for bad data."""
        return EVENT_TYPES[self.type].model_validate(self.data)


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

    def routing_key(self) -> str:
        return offer_routing_key(
            self.event_type, self.job_type, self.gpu_provider, self.worker_pool, self.owner_pool
        )


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

    def routing_key(self) -> str:
        return offer_routing_key(
            self.event_type, self.job_type, self.gpu_provider, self.worker_pool, self.owner_pool
        )


class JobClaimed(EventPayload):
    event_type: ClassVar[str] = "job.claimed"

    job_id: UUID
    user_id: str
    attempt: int
    worker_id: str
    lease_expires_at: datetime


class JobProgress(EventPayload):
    """Sent by the worker during training; also its heartbeat (it renews the lease)."""

    event_type: ClassVar[str] = "job.progress"

    job_id: UUID
    attempt: int = Field(ge=1, description="The fencing token granted at claim.")
    worker_id: str
    claim_secret: str = claim_secret_field()
    progress: float = Field(ge=0, le=100)
    phase: JobPhase = JobPhase.TRAINING
    step: int | None = Field(default=None, ge=0)
    total_steps: int | None = Field(default=None, ge=0)
    epoch: float | None = Field(default=None, ge=0)
    loss: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    log_lines: list[str] = Field(default_factory=list, max_length=MAX_LOG_LINES)
    eta_seconds: float | None = Field(default=None, ge=0)
    logs_url: str | None = None

    @field_validator("log_lines")
    @classmethod
    def _clip_lines(cls, lines: list[str]) -> list[str]:
        # A runaway line is clipped, not refused: dead-lettering a heartbeat would cost the lease.
        return [line[:MAX_LOG_LINE_CHARS] for line in lines]


class JobFailed(EventPayload):
    """Sent by the worker when its attempt cannot go on."""

    event_type: ClassVar[str] = "job.failed"

    job_id: UUID
    attempt: int = Field(ge=1)
    worker_id: str
    claim_secret: str = claim_secret_field()
    error: str = Field(max_length=MAX_ERROR_CHARS)
    failure_class: Literal[FailureClass.USER_ERROR, FailureClass.INFRA_ERROR]
    retryable: bool = Field(
        default=False, description="True for infra errors worth another attempt."
    )


class ModelPushed(EventPayload):
    """Sent by the worker (on the worker exchange) once the model is stored.

    job-api completes the job only if the attempt and claim secret are the current holder's, then
    publishes `model.completed`.
    """

    event_type: ClassVar[str] = "model.pushed"

    job_id: UUID
    attempt: int = Field(ge=1)
    worker_id: str
    claim_secret: str = claim_secret_field()
    repo_id: str = Field(min_length=1, description="`owner/name`.")
    revision: str = Field(
        min_length=1, description="Hub commit sha, or the local store's version id."
    )
    store: ModelStore
    uri: str = Field(
        min_length=1,
        description=(
            "Where to load it: `hf://owner/name@rev` (the Hub), `local://owner/name@rev` (a "
            "worker's local model store: `<store>/<owner key>/owner/name/rev/`, resolved by the "
            "server that loads it against its own store folder; contracts.store), "
            "`s3://bucket/key`. Never a path on a machine."
        ),
    )
    metrics: dict[str, float] = Field(default_factory=dict, description="After training.")
    baseline_metrics: dict[str, float] = Field(
        default_factory=dict, description="The base model on the same held-out data."
    )
    data_stats: dict[str, Any] = Field(default_factory=dict)
    logs_url: str | None = None
    created_repo: bool = Field(
        default=False,
        description="The push created the repository (so deleting the model may delete it).",
    )


class WorkerHeartbeat(EventPayload):
    """Sent by every enrolled worker (on the worker exchange) when it connects and every few
    seconds after: what it serves, whether it is busy. job-api keeps the worker registry with it
    (GET /api/workers, "no worker online" against "all busy")."""

    event_type: ClassVar[str] = "worker.heartbeat"

    worker_id: str = Field(min_length=1, max_length=200)
    sent_at: datetime
    state: Literal["idle", "busy", "stopping"]
    job_id: UUID | None = Field(default=None, description="The job it runs, when busy.")
    provider: GPUProvider
    job_types: list[JobType] = Field(min_length=1)
    hardware: str | None = Field(default=None, max_length=300)
    version: str | None = Field(default=None, max_length=50)
    signature: str = Field(
        default="",
        max_length=128,
        repr=False,
        description="HMAC-SHA256 (hex) of `signing_parts()`, keyed by sha256(worker token).",
    )

    def subject(self) -> str | None:
        return None

    def signing_parts(self) -> tuple[str, ...]:
        return (
            "heartbeat",
            self.worker_id,
            self.sent_at.isoformat(),
            self.state,
            str(self.job_id or ""),
            str(self.provider),
            ",".join(sorted(str(t) for t in self.job_types)),
            self.hardware or "",
            self.version or "",
        )

    def signed(self, key: bytes) -> "WorkerHeartbeat":
        return self.model_copy(update={"signature": sign(key, self.signing_parts())})


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
