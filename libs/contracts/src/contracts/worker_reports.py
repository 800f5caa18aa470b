"""What a worker sends on the worker exchange: its reports of one attempt (`job.progress`,
`job.failed`, `model.pushed`), each carrying the attempt's claim secret, and its presence
(`worker.heartbeat`). Only job-api consumes them, and fences them against the job's holder.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field, field_validator

from contracts.credentials import sign
from contracts.enums import FailureClass, GPUProvider, JobPhase, JobType, ModelStore
from contracts.envelope import EventPayload

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


@dataclass
class Progress:
    """What a progress report says of an attempt, beyond who sends it and its log lines: the
    worker keeps the latest one and sends it as `job.progress`, job-api applies it to the job."""

    progress: float = 0.0
    phase: JobPhase = JobPhase.TRAINING
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    eta_seconds: float | None = None
    logs_url: str | None = None

    def copy(self) -> "Progress":
        return replace(self, metrics=dict(self.metrics))


PROGRESS_FIELDS = frozenset(f.name for f in fields(Progress))


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

    @classmethod
    def of(
        cls,
        progress: Progress,
        *,
        job_id: UUID,
        attempt: int,
        worker_id: str,
        claim_secret: str,
        log_lines: Sequence[str] = (),
    ) -> "JobProgress":
        return cls(
            job_id=job_id,
            attempt=attempt,
            worker_id=worker_id,
            claim_secret=claim_secret,
            log_lines=list(log_lines),
            **asdict(progress),
        )

    def report(self) -> Progress:
        """The progress this report carries (without its log lines)."""
        return Progress(**self.model_dump(include=set(PROGRESS_FIELDS)))


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
    gpu_memory_gb: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description=(
            "Memory (GB) of its largest GPU; None: no GPU. The hardware classes it satisfies "
            "(contracts.catalogue.HardwareClass) follow from it."
        ),
    )
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
            # Only when set: a heartbeat without it is signed as before the field existed.
            *(() if self.gpu_memory_gb is None else (f"gpu={self.gpu_memory_gb}",)),
        )

    def signed(self, key: bytes) -> "WorkerHeartbeat":
        return self.model_copy(update={"signature": sign(key, self.signing_parts())})
