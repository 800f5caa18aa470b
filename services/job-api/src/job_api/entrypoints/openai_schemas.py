"""Bodies of the OpenAI-compatible fine-tuning routes: the request of
`client.fine_tuning.jobs.create` and OpenAI's job, event and checkpoint objects and their lists
(the shapes of the `openai` package's types/fine_tuning)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.enums import GPUProvider, JobStatus, JobType, WorkerPool
from job_api.domain.job import Job
from job_api.service_layer.openai_jobs import (
    ORGANIZATION_ID,
    STATUSES,
    OpenAIHyperparameters,
    echo_hyperparameters,
    estimated_finish,
    job_error,
    job_ref,
    trained_tokens,
    training_file_of,
    unix,
)

Auto = Literal["auto"]


class HyperparametersIn(BaseModel):
    """OpenAI's three hyperparameters; any other of the job type's own (see /base-models) may be
    given beside them (`max_seq_length`, `lora_r`, `eval_split`...)."""

    model_config = ConfigDict(extra="allow")

    n_epochs: int | Auto | None = Field(default=None, description="-> epochs.")
    batch_size: int | Auto | None = Field(default=None, description="-> batch_size.")
    learning_rate_multiplier: float | Auto | None = Field(
        default=None, description="-> learning_rate = multiplier x the job type's default."
    )

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class SupervisedIn(BaseModel):
    hyperparameters: HyperparametersIn | None = None


class MethodIn(BaseModel):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedIn | None = None
    dpo: dict[str, Any] | None = None
    reinforcement: dict[str, Any] | None = None


class FineTuningJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, description="A base model of the catalogue.")
    training_file: str = Field(
        min_length=1, max_length=200, description="A file id from POST /v1/files (`file-<id>`)."
    )
    hyperparameters: HyperparametersIn | None = Field(
        default=None, description="Deprecated by OpenAI in favour of `method`; both work."
    )
    method: MethodIn | None = Field(default=None, description="Only `supervised` is offered.")
    suffix: str | None = Field(
        default=None, max_length=64, description="The output model is <namespace>/<base>-<suffix>."
    )
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    validation_file: str | None = Field(
        default=None, description="Not offered: set `eval_split` in hyperparameters instead."
    )
    integrations: list[dict[str, Any]] | None = Field(default=None, description="Not offered.")
    metadata: dict[str, str] | None = Field(default=None, description="Not offered.")
    ftd_job_type: JobType | None = Field(
        default=None, description="The job type, where the model and the file leave a choice."
    )
    ftd_gpu_provider: GPUProvider = Field(
        default=GPUProvider.LOCAL, description="Which provider's workers may run it."
    )
    ftd_worker_pool: WorkerPool = Field(
        default=WorkerPool.SHARED, description="shared, private or any (as /api/finetune/jobs)."
    )


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class SupervisedOut(BaseModel):
    hyperparameters: OpenAIHyperparameters


class MethodOut(BaseModel):
    type: Literal["supervised"] = "supervised"
    supervised: SupervisedOut


class FineTuningJob(BaseModel):
    id: str = Field(description="`ftjob-<job id>`.")
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None
    fine_tuned_model: str | None = Field(description="The output model, once succeeded.")
    finished_at: int | None
    hyperparameters: OpenAIHyperparameters
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    trained_tokens: int | None
    training_file: str
    validation_file: str | None = None
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: MethodOut
    ftd_job_type: JobType
    ftd_status: str = Field(description="The platform's status (pending, running, completed...).")
    ftd_phase: str
    ftd_progress: float
    ftd_output_model: str


class FineTuningJobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool


class FineTuningJobEvent(BaseModel):
    id: str = Field(description="`ftevent-<history row id>`.")
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any] | None = None


class FineTuningJobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobEvent]
    has_more: bool


class CheckpointMetrics(BaseModel):
    step: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    full_valid_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int


class FineTuningJobCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobCheckpoint]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


def job_object(job: Job, now: datetime) -> FineTuningJob:
    """A Job as OpenAI's fine_tuning.job."""
    hyperparameters = echo_hyperparameters(job.job_type, job.hyperparameters)
    error = job_error(job)
    return FineTuningJob(
        id=job_ref(job.id),
        created_at=unix(job.created_at) or 0,
        error=JobError(**error) if error else None,
        fine_tuned_model=job.output_model if job.status is JobStatus.COMPLETED else None,
        finished_at=unix(job.completed_at) if job.status.is_terminal else None,
        hyperparameters=hyperparameters,
        model=job.base_model,
        organization_id=ORGANIZATION_ID,
        result_files=[],
        seed=int(job.hyperparameters.get("seed", 0)),
        status=STATUSES[job.status],
        trained_tokens=trained_tokens(job),
        training_file=training_file_of(job),
        estimated_finish=estimated_finish(job, now),
        method=MethodOut(supervised=SupervisedOut(hyperparameters=hyperparameters)),
        ftd_job_type=job.job_type,
        ftd_status=str(job.status),
        ftd_phase=str(job.phase),
        ftd_progress=job.progress,
        ftd_output_model=job.output_model,
    )
