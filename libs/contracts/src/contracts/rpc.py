"""Broker request/reply messages: a worker asks job-api for a job it took off a work queue."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts.credentials import sign
from contracts.enums import GPUProvider, JobType
from contracts.envelope import trace_id_field
from contracts.store import OWNER_KEY_PATTERN


class ClaimJob(BaseModel):
    """Command: grant me this job. `claim_id` makes a retried request idempotent; `signature`
    proves the enrolled worker's credential without sending it (contracts.credentials)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: UUID
    worker_id: str = Field(
        min_length=1, max_length=200, description="The enrolled worker's id (its token names it)."
    )
    claim_id: UUID = Field(
        description="Unique per claim attempt; a retry with the same id is re-granted."
    )
    provider: GPUProvider
    job_types: list[JobType] = Field(min_length=1)
    gpu_memory_gb: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description=(
            "Memory (GB) of the worker's largest GPU; None: no GPU. job-api refuses a job whose "
            "hardware class this does not satisfy."
        ),
    )
    expires_at: datetime = Field(
        description="job-api refuses a request it reads after this moment."
    )
    signature: str = Field(
        default="",
        max_length=128,
        repr=False,
        description="HMAC-SHA256 (hex) of `signing_parts()`, keyed by sha256(worker token).",
    )
    correlation_id: str | None = trace_id_field(
        "The `correlation_id` of the offer (job.created, job.requeued) the worker claims."
    )
    causation_id: str | None = trace_id_field("The id of the offer's event.")

    def signing_parts(self) -> tuple[str, ...]:
        return (
            "claim",
            self.worker_id,
            str(self.job_id),
            str(self.claim_id),
            self.expires_at.isoformat(),
            str(self.provider),
            ",".join(sorted(str(t) for t in self.job_types)),
            # Only when set: a claim without it is signed as before the field existed.
            *(() if self.gpu_memory_gb is None else (f"gpu={self.gpu_memory_gb}",)),
        )

    def signed(self, key: bytes) -> "ClaimJob":
        return self.model_copy(update={"signature": sign(key, self.signing_parts())})


class ClaimRefusal(StrEnum):
    # The credential is unknown, revoked or the signature does not match: the worker must stop.
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    NOT_PENDING = "not_pending"
    WRONG_ROUTE = "wrong_route"
    EXPIRED = "expired"
    # The worker's advertised GPU memory does not satisfy the job's hardware class.
    INSUFFICIENT_HARDWARE = "insufficient_hardware"


class DataTicket(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str = Field(
        description=(
            "Where the worker downloads the training data. It never carries a secret: an "
            "uploaded dataset's ticket travels in `token`, sent as `Authorization: Bearer`."
        )
    )
    token: str | None = Field(
        default=None,
        repr=False,
        description=(
            "The download ticket of an uploaded dataset (valid for this attempt only): send it "
            "as `Authorization: Bearer <token>`, never in the URL, so no access log records it."
        ),
    )
    external: bool = Field(
        default=False,
        description=(
            "True when the URL is one a user gave: the worker fetches it only through its SSRF "
            "guard (public addresses, checked at connect time and on every redirect)."
        ),
    )
    max_bytes: int | None = Field(
        default=None, ge=0, description="Stop the download beyond this many bytes."
    )
    expires_at: datetime | None = None
    sha256: str | None = Field(
        default=None, description="Hex sha256 of the file (uploaded datasets); verify it."
    )
    size_bytes: int | None = Field(default=None, ge=0)
    format: Literal["csv", "jsonl"] | None = None


class JobSpec(BaseModel):
    """Everything a worker needs to run one attempt."""

    model_config = ConfigDict(frozen=True)

    job_id: UUID
    attempt: int = Field(description="Fencing token: send it with every event of this attempt.")
    claim_secret: str = Field(
        repr=False,
        description=(
            "Random, per attempt: every report of this attempt carries it. job-api keeps only "
            "its sha256; a report without the current secret is ignored."
        ),
    )
    job_type: JobType
    base_model: str
    output_model: str
    hyperparameters: dict[str, Any]
    data: DataTicket
    hub_token: str | None = Field(
        default=None,
        repr=False,
        description=(
            "The job owner's own Hugging Face token, linked to the output namespace: the push "
            "uses it instead of the worker's. Null when the owner linked none."
        ),
    )
    owner_key: str | None = Field(
        default=None,
        pattern=OWNER_KEY_PATTERN,
        description=(
            "The job owner's folder in a worker's local model store (contracts.store.owner_key: "
            "a hash of the user id). Null from a job-api that does not say: the model is stored "
            "without one."
        ),
    )
    lease_seconds: float = Field(description="Send progress at least this often or lose the job.")
    lease_expires_at: datetime
    correlation_id: str | None = trace_id_field(
        "The chain of work the job belongs to (the claim's correlation id): every report of the "
        "attempt carries it."
    )
    causation_id: str | None = trace_id_field(
        "The id of the claim that granted the attempt (`ClaimJob.claim_id`): the cause of its "
        "reports."
    )


class ClaimReply(BaseModel):
    model_config = ConfigDict(frozen=True)

    granted: bool
    refusal: ClaimRefusal | None = None
    message: str | None = None
    job: JobSpec | None = None
