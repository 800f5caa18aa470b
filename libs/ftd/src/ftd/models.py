"""Response models, written from the committed OpenAPI documents (docs/openapi/*.json); the
enumerations the platform shares (job types and statuses) are contracts.enums'.

Fields the server adds later are kept (`extra="allow"`), so an older SDK still reads a newer
server and `--json` output passes them on; tests/sdk checks these models against the documents.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, Self, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

# Re-exported: the SDK's users and its command line take them from here.
from contracts.enums import JobStatus as JobStatus
from contracts.enums import JobType as JobType
from ftd.errors import FtdError


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=False)


_STATUSES = frozenset(str(s) for s in JobStatus)


class ModelStatus(StrEnum):
    REGISTERED = "registered"
    DEPLOYED = "deployed"
    RETIRED = "retired"


class WaitingNotice(_Model):
    reason: str
    message: str
    command: str
    # For a job that needs a GPU: how big ("needs a GPU worker with ≥ 24 GB"); None: any worker.
    needs: str | None = None


class JobInfo(_Model):
    """A fine-tuning job as the API describes it (FinetuneJobResponse)."""

    id: UUID
    user_id: str
    project_id: str | None
    job_type: JobType
    base_model: str
    training_data_url: str
    dataset_id: UUID | None
    output_model: str
    output_revision: str | None
    gpu_provider: str
    worker_pool: str
    # `cpu` (any worker) or `gpu<N>` (a GPU with at least N GB), from the base model.
    hardware_class: str = "cpu"
    status: JobStatus
    phase: str
    progress: float
    error: str | None
    failure_class: str | None
    logs_url: str | None
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    step: int | None
    total_steps: int | None
    epoch: float | None
    eta_seconds: float | None
    attempt: int
    max_attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    waiting: WaitingNotice | None = None


C = TypeVar("C")


class BoundJob(JobInfo, Generic[C]):
    """A job bound to the client `C` that fetched it (`ftd.Job`, `ftd.AsyncJob`)."""

    _client: C | None = PrivateAttr(default=None)

    @classmethod
    def bound(cls, info: JobInfo, client: C) -> Self:
        job = cls.model_validate(info.model_dump())
        job._client = client
        return job

    @property
    def client(self) -> C:
        if self._client is None:
            raise FtdError("This job is not bound to a client.", code="unbound_job")
        return self._client


class JobEvent(_Model):
    """One row of a job's history: a `status` change or a `progress` report (JobEventResponse).
    `id` grows along the history and is the stream's `Last-Event-ID`."""

    id: int
    job_id: UUID
    attempt: int
    kind: str
    data: dict[str, Any]
    created_at: datetime

    @property
    def to_status(self) -> JobStatus | None:
        """For a status event, the status the job moved to."""
        value = self.data.get("to_status") if self.kind == "status" else None
        return JobStatus(value) if isinstance(value, str) and value in _STATUSES else None


class JobSnapshot(_Model):
    """The first event of a fresh stream: the job as it stood when the stream opened. Events
    after it (ids above `id`) are what happened since."""

    kind: Literal["snapshot"] = "snapshot"
    id: int
    job: JobInfo


class Dataset(_Model):
    """An uploaded training file (DatasetResponse); `training_data_url` goes into a job."""

    id: UUID
    filename: str
    format: str
    shape: str
    job_type: str
    job_types: list[str]
    rows: int
    columns: list[str]
    size_bytes: int
    sha256: str
    stats: dict[str, Any]
    validation: dict[str, Any] = Field(description="The validation report (warnings included).")
    training_data_url: str
    created_at: datetime


class DryRun(_Model):
    """What a `dry_run` upload found; nothing was stored (DryRunResponse)."""

    dry_run: bool = True
    filename: str
    format: str | None
    shape: str | None
    job_type: str | None
    job_types: list[str]
    rows: int
    columns: list[str]
    size_bytes: int
    sha256: str
    stats: dict[str, Any]
    validation: dict[str, Any]


class RegisteredModel(_Model):
    """A trained model version in the registry (ModelResponse)."""

    id: UUID
    user_id: str
    name: str
    version: int
    job_id: UUID
    attempt: int
    job_type: JobType
    base_model: str
    repo_id: str
    revision: str
    store: str
    uri: str
    project_id: str | None
    dataset_id: UUID | None
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    data_stats: dict[str, Any]
    hyperparameters: dict[str, Any]
    status: ModelStatus
    created_at: datetime
    registered_at: datetime
    updated_at: datetime
    deployed_at: datetime | None
    retired_at: datetime | None
    created_repo: bool


class BaseModelInfo(_Model):
    id: str
    job_type: JobType
    display_name: str
    parameters: str
    offline: bool = False
    source: str | None = None


class BaseModels(_Model):
    """The catalogue of one job type (BaseModelsResponse)."""

    job_type: JobType
    models: list[BaseModelInfo]
    default_hyperparameters: dict[str, Any]


# --- calling deployed models (model-server's OpenAI-style /v1/) -----------------------------------


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Embedding(_Model):
    index: int
    embedding: list[float]


class Embeddings(_Model):
    """POST /v1/embeddings: one vector per input text, in order."""

    data: list[Embedding]
    model: str
    usage: Usage

    @property
    def vectors(self) -> list[list[float]]:
        return [item.embedding for item in sorted(self.data, key=lambda e: e.index)]


class Classification(_Model):
    index: int
    label: str
    score: float
    scores: dict[str, float]


class Classifications(_Model):
    """POST /v1/classify: per input text, the best label, its probability and every label's."""

    data: list[Classification]
    model: str
    usage: Usage


class ChatMessage(_Model):
    role: str
    content: str


class ChatChoice(_Model):
    index: int
    message: ChatMessage
    finish_reason: str | None


class ChatCompletion(_Model):
    """POST /v1/chat/completions (not streamed): `content` is the assistant's answer."""

    id: str
    model: str
    choices: list[ChatChoice]
    usage: Usage

    @property
    def content(self) -> str:
        return self.choices[0].message.content if self.choices else ""
