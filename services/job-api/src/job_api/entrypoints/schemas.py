"""HTTP request and response bodies (the brief's B2 schemas, extended)."""

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts.catalogue import BaseModelInfo, Catalogue, HardwareClass
from contracts.enums import FailureClass, GPUProvider, JobPhase, JobStatus, JobType, WorkerPool
from contracts.events import MAX_ERROR_CHARS, MAX_LOG_LINES
from contracts.hyperparameters import (
    ClassifierHyperparameters,
    EmbeddingHyperparameters,
    LoraHyperparameters,
)
from contracts.routing import DATASET_REF_PREFIX
from job_api.domain.job import Job
from job_api.service_layer.jobs import HTTPS_DATA_URL_PATTERN, OUTPUT_MODEL_PATTERN

# PostgreSQL text cannot hold NUL: such a string is refused at the door (422), and the document
# says so, instead of failing at INSERT time with a 500.
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, Field(pattern=NO_NUL)]


class FinetuneJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_type: JobType = Field(description="embedding, classifier or llm_lora.")
    base_model: str = Field(
        min_length=1, max_length=200, description="A model of the catalogue for job_type."
    )
    training_data_url: str = Field(
        min_length=1,
        max_length=4096,
        description="A dataset reference from the upload route (`ftd://datasets/<id>`) or an https URL.",
    )
    output_model: str = Field(
        min_length=3,
        max_length=200,
        description="Hugging Face Hub repo `owner/name`.",
        json_schema_extra={"pattern": OUTPUT_MODEL_PATTERN},
    )
    gpu_provider: GPUProvider = Field(
        description="Which pool of workers may run it: colab, kaggle, runpod, local."
    )
    project_id: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the job type's defaults (see /base-models)."
    )
    worker_pool: WorkerPool = Field(
        default=WorkerPool.SHARED,
        description=(
            "Which workers may run it: `shared` (the operator's pool, for `gpu_provider`), "
            "`private` (only workers you enrolled: your Colab, your box), or `any` (whichever "
            "takes it first). `private` needs at least one enrolled worker of yours."
        ),
    )


class FinetuneJobUpdate(BaseModel):
    """The worker's update (brief B2), plus the fencing token and richer progress."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    progress: float | None = Field(default=None, ge=0, le=100)
    error: str | None = Field(default=None, max_length=MAX_ERROR_CHARS, pattern=NO_NUL)
    logs_url: str | None = Field(default=None, max_length=2048, pattern=NO_NUL)
    attempt: int | None = Field(
        default=None, ge=1, description="The attempt this update belongs to."
    )
    worker_id: str | None = Field(
        default=None,
        max_length=200,
        pattern=NO_NUL,
        description="Ignored: the holder of a job is the credential that claimed it.",
    )
    phase: JobPhase | None = None
    step: int | None = Field(default=None, ge=0)
    total_steps: int | None = Field(default=None, ge=0)
    epoch: float | None = Field(default=None, ge=0)
    loss: float | None = None
    eta_seconds: float | None = Field(default=None, ge=0)
    metrics: dict[Text, float] = Field(default_factory=dict)
    log_lines: list[Text] = Field(default_factory=list, max_length=MAX_LOG_LINES)
    output_revision: str | None = Field(default=None, max_length=200, pattern=NO_NUL)
    failure_class: FailureClass | None = None
    retryable: bool = False


def _redacted(url: str) -> str:
    """Query strings of external URLs may carry signatures: never echo them back."""
    parts = urlsplit(url)
    return (
        urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
        if parts.query or "@" in parts.netloc
        else url
    )


class WaitingNotice(BaseModel):
    reason: Literal["queued", "all_busy", "no_worker"] = Field(
        description="`queued` (a worker that takes it is idle), `all_busy`, or `no_worker`."
    )
    message: str
    command: str = Field(description="Starts a worker that takes this job (with your token).")
    needs: str | None = Field(
        default=None,
        description=(
            "For a job that needs a GPU: how big, as a sentence fragment (`needs a GPU worker "
            "with ≥ 24 GB`); null for a job any worker (a CPU's too) runs."
        ),
    )


class FinetuneJobResponse(BaseModel):
    id: UUID
    user_id: str
    project_id: str | None
    job_type: JobType
    base_model: str
    training_data_url: str
    dataset_id: UUID | None
    output_model: str
    output_revision: str | None
    gpu_provider: GPUProvider
    status: JobStatus
    phase: JobPhase
    progress: float
    error: str | None
    failure_class: FailureClass | None
    logs_url: str | None
    hyperparameters: dict[str, Any]
    metrics: dict[str, float]
    step: int | None
    total_steps: int | None
    epoch: float | None
    eta_seconds: float | None
    attempt: int
    max_attempts: int
    worker_id: str | None = Field(
        description="The enrolled worker holding the job (or `shared-key`); null when none."
    )
    worker_pool: WorkerPool
    hardware_class: HardwareClass = Field(
        description=(
            "What it needs to train, from its base model (fixed at creation): `cpu` (any worker) "
            "or `gpu<N>` (a worker whose GPU has at least N GB); only such workers are offered it."
        )
    )
    waiting: "WaitingNotice | None" = Field(
        default=None,
        description=(
            "For a pending job: why it waits (`queued`, `all_busy`, `no_worker`), in a sentence, "
            "and the command that starts a worker for it."
        ),
    )
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def of(cls, job: Job, waiting: "WaitingNotice | None" = None) -> "FinetuneJobResponse":
        values = {name: getattr(job, name) for name in cls.model_fields if name != "waiting"}
        values["waiting"] = waiting if job.status is JobStatus.PENDING else None
        values["training_data_url"] = _redacted(job.training_data_url)
        if job.status is JobStatus.PENDING:
            # "No worker serves this queue yet" is a phase of a pending job (`phase: no_worker`),
            # not a failure: failure_class stays null until an attempt fails.
            values["failure_class"] = None
        return cls.model_validate(values)


class WorkerJobResponse(FinetuneJobResponse):
    data_url: str | None = Field(
        default=None, description="Where the worker holding this attempt downloads the data."
    )
    data_headers: dict[str, str] | None = Field(
        default=None,
        description=(
            "Headers to send with the download (the data ticket, as `Authorization: Bearer`): "
            "kept out of the URL so that no access log records it. Given with `data_url` only."
        ),
    )


class JobEventResponse(BaseModel):
    id: int
    job_id: UUID
    attempt: int
    kind: str
    data: dict[str, Any]
    created_at: datetime


class BaseModelsResponse(BaseModel):
    job_type: JobType
    models: list[BaseModelInfo]
    default_hyperparameters: dict[str, Any]


_HYPERPARAMETERS = {
    JobType.EMBEDDING: EmbeddingHyperparameters,
    JobType.CLASSIFIER: ClassifierHyperparameters,
    JobType.LLM_LORA: LoraHyperparameters,
}
DATASET_REF_PATTERN = f"^{DATASET_REF_PREFIX}[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}$"


def _hyperparameters_schema(job_type: JobType) -> dict[str, Any]:
    schema = _HYPERPARAMETERS[job_type].model_json_schema()
    schema["properties"].pop("job_type", None)
    schema.pop("required", None)
    schema["additionalProperties"] = False
    schema["title"] = f"Hyperparameters ({job_type})"
    schema["description"] = "Overrides of this job type's defaults (see /base-models)."
    return schema


def job_create_schema(
    generated: dict[str, Any], catalogue: Catalogue, *, allow_external_data_urls: bool
) -> dict[str, Any]:
    """The request body of POST /jobs as the server really checks it: one variant per job type,
    each naming the base models of the catalogue for that type and that type's hyperparameters,
    and the data reference formats this deployment accepts. Generated clients (and schemathesis)
    then send only what the server accepts, and know why the rest is refused."""
    data_url: dict[str, Any] = {
        "type": "string",
        "minLength": 1,
        "maxLength": 4096,
        "description": generated["properties"]["training_data_url"]["description"],
    }
    if allow_external_data_urls:
        data_url["anyOf"] = [{"pattern": DATASET_REF_PATTERN}, {"pattern": HTTPS_DATA_URL_PATTERN}]
    else:
        data_url["pattern"] = DATASET_REF_PATTERN
    variants = []
    for job_type in JobType:
        properties = dict(generated["properties"])
        properties["job_type"] = {"type": "string", "const": str(job_type)}
        properties["base_model"] = {
            "type": "string",
            "enum": catalogue.allowed_ids(job_type),
            "description": f"A base model of the catalogue for {job_type} jobs.",
        }
        properties["hyperparameters"] = _hyperparameters_schema(job_type)
        properties["training_data_url"] = data_url
        variants.append(
            {
                "title": f"FinetuneJobCreate ({job_type})",
                "type": "object",
                "properties": properties,
                "required": generated["required"],
                "additionalProperties": False,
            }
        )
    return {
        "title": "FinetuneJobCreate",
        "description": "A new job; the variant follows `job_type`.",
        "oneOf": variants,
    }
