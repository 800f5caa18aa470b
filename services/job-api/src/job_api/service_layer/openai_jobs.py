"""OpenAI's fine-tuning API in the platform's terms: a job request becomes a SubmitJob, a Job and
its history become OpenAI's job, event and checkpoint objects. The mapping is written down in
docs/openai-compat.md; the routes are entrypoints.routes_openai_jobs."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from contracts.catalogue import Catalogue
from contracts.enums import GPUProvider, JobStatus, JobType, WorkerPool
from contracts.hyperparameters import parse_hyperparameters
from contracts.routing import dataset_ref
from job_api.domain.errors import InvalidJob
from job_api.domain.job import Job
from job_api.service_layer import jobs as job_service
from job_api.service_layer.namespaces import namespaces_of
from job_api.service_layer.unit_of_work import Policy, UnitOfWork

JOB_PREFIX = "ftjob-"
FILE_PREFIX = "file-"
EVENT_PREFIX = "ftevent-"
CHECKPOINT_PREFIX = "ftckpt-"
ORGANIZATION_ID = "org-ftd"

STATUSES = {
    JobStatus.PENDING: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}
# OpenAI's names for the platform's own hyperparameters.
_RENAMED = {"n_epochs": "epochs", "batch_size": "batch_size"}


class OpenAIHyperparameters(BaseModel):
    n_epochs: int | None = None
    batch_size: int | None = None
    learning_rate_multiplier: float | None = None


def job_ref(job_id: UUID) -> str:
    return f"{JOB_PREFIX}{job_id}"


def parse_ref(prefix: str, value: str) -> UUID | None:
    """The uuid of `<prefix><uuid>`; None for anything else."""
    if not value.startswith(prefix):
        return None
    try:
        return UUID(value.removeprefix(prefix))
    except ValueError:
        return None


def unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def _default_learning_rate(job_type: JobType) -> float:
    return parse_hyperparameters(job_type, None).learning_rate


def translate_hyperparameters(job_type: JobType, given: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's hyperparameters as the platform's overrides: n_epochs -> epochs, batch_size as
    it is, learning_rate_multiplier -> learning_rate = multiplier x the type's default; "auto" (or
    absent) keeps the default. Any other key is one of the type's own and passes through (the
    job's validation checks it); naming one both ways (n_epochs and epochs) is refused."""
    ours: dict[str, Any] = {}
    for key, value in given.items():
        if key == "learning_rate_multiplier":
            target, converted = "learning_rate", value
            if value != "auto" and value is not None:
                if not isinstance(value, int | float) or value <= 0:
                    raise InvalidJob(
                        "invalid_hyperparameters",
                        "learning_rate_multiplier must be a positive number or 'auto'.",
                        "hyperparameters.learning_rate_multiplier",
                    )
                converted = float(value) * _default_learning_rate(job_type)
        else:
            target, converted = _RENAMED.get(key, key), value
        if target in ours or (target != key and target in given):
            raise InvalidJob(
                "conflicting_hyperparameters",
                f"{key} and {target} name the same hyperparameter: give one of them.",
                f"hyperparameters.{key}",
            )
        if converted != "auto" and converted is not None:
            ours[target] = converted
    return ours


def echo_hyperparameters(job_type: JobType, stored: dict[str, Any]) -> OpenAIHyperparameters:
    """The job's hyperparameters (defaults filled) in OpenAI's terms."""
    rate = stored.get("learning_rate")
    default = _default_learning_rate(job_type)
    return OpenAIHyperparameters(
        n_epochs=stored.get("epochs"),
        batch_size=stored.get("batch_size"),
        learning_rate_multiplier=round(rate / default, 6)
        if isinstance(rate, int | float)
        else None,
    )


def pick_job_type(
    catalogue: Catalogue, model: str, stated: JobType | None, file_types: list[str] | None
) -> JobType:
    """The job type a model (and the file, and the caller's `ftd_job_type`) make: the model must
    be in the catalogue; where it is offered for several types (all-MiniLM-L6-v2 trains
    embedding and classifier jobs), the file's shape decides."""
    offered = [t for t in JobType if catalogue.find(t, model) is not None]
    if not offered:
        every = sorted({m for t in JobType for m in catalogue.allowed_ids(t)})
        raise InvalidJob(
            "model_not_found",
            f"The model {model!r} is not a base model here; choose one of: {', '.join(every)}.",
            "model",
        )
    if stated is not None:
        if stated not in offered:
            raise InvalidJob(
                "model_not_found",
                f"The model {model!r} is not offered for {stated} jobs (it is for "
                f"{', '.join(offered)}).",
                "model",
            )
        return stated
    candidates = [t for t in offered if file_types is None or str(t) in file_types]
    if not candidates:
        raise InvalidJob(
            "file_incompatible",
            f"The training file trains {', '.join(file_types or [])} jobs, and {model!r} is a "
            f"base model for {', '.join(offered)} jobs.",
            "training_file",
        )
    if len(candidates) > 1:
        raise InvalidJob(
            "ambiguous_job_type",
            f"{model!r} trains {', '.join(candidates)} jobs and so does the file: say which "
            "with ftd_job_type.",
            "ftd_job_type",
        )
    return candidates[0]


def output_model_for(namespace: str, base_model: str, suffix: str | None) -> str:
    """`<namespace>/<base short name>-<suffix>`; without a suffix a random one, so that each job
    names its own model."""
    short = base_model.rsplit("/", 1)[-1]
    return f"{namespace}/{short}-{suffix if suffix is not None else uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class CreateFineTune:
    """`client.fine_tuning.jobs.create`, its values checked for shape (entrypoints)."""

    user_id: str
    model: str
    training_file: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    suffix: str | None = None
    seed: int | None = None
    job_type: JobType | None = None
    gpu_provider: GPUProvider = GPUProvider.LOCAL
    worker_pool: WorkerPool = WorkerPool.SHARED


async def _namespace(uow: UnitOfWork, user_id: str) -> str:
    held = await namespaces_of(uow, user_id)
    if not held:
        raise InvalidJob(
            "no_output_namespace",
            "You hold no namespace to name the fine-tuned model in (your user id is not a valid "
            "Hub name): link your Hugging Face account or ask an admin for a namespace.",
            "suffix",
        )
    return held[0].name


async def submit_command(
    uow: UnitOfWork, cmd: CreateFineTune, policy: Policy
) -> job_service.SubmitJob:
    """The platform's SubmitJob for an OpenAI request (the job's own checks run at submission)."""
    dataset_id = parse_ref(FILE_PREFIX, cmd.training_file)
    if dataset_id is None:
        raise InvalidJob(
            "invalid_training_file",
            "training_file must be the id of a file uploaded with POST /v1/files (file-<id>).",
            "training_file",
        )
    known = await uow.datasets.get(dataset_id)
    usable = known is not None and known.user_id == cmd.user_id and not known.deleted
    offered = [t for t in JobType if policy.catalogue.find(t, cmd.model) is not None]
    if not usable and cmd.job_type is None and len(offered) > 1:
        # Only the file can tell the type, and it is not announced here yet (or not the caller's).
        raise job_service.DatasetNotReady(dataset_id)
    job_type = pick_job_type(
        policy.catalogue, cmd.model, cmd.job_type, known.job_types if known and usable else None
    )
    hyperparameters = translate_hyperparameters(job_type, cmd.hyperparameters)
    if cmd.seed is not None:
        if "seed" in hyperparameters and hyperparameters["seed"] != cmd.seed:
            raise InvalidJob(
                "conflicting_hyperparameters",
                "seed is given twice with two values.",
                "seed",
            )
        hyperparameters["seed"] = cmd.seed
    return job_service.SubmitJob(
        user_id=cmd.user_id,
        job_type=job_type,
        base_model=cmd.model,
        training_data_url=dataset_ref(dataset_id),
        output_model=output_model_for(await _namespace(uow, cmd.user_id), cmd.model, cmd.suffix),
        gpu_provider=cmd.gpu_provider,
        hyperparameters=hyperparameters,
        worker_pool=cmd.worker_pool,
    )


def training_file_of(job: Job) -> str:
    if job.dataset_id is not None:
        return f"{FILE_PREFIX}{job.dataset_id}"
    return job.training_data_url.split("?", 1)[0]


def job_error(job: Job) -> dict[str, Any] | None:
    if job.status is not JobStatus.FAILED:
        return None
    code = str(job.failure_class) if job.failure_class else "failed"
    return {"code": code, "message": job.error or "The job failed.", "param": None}


def estimated_finish(job: Job, now: datetime) -> int | None:
    if job.status is not JobStatus.RUNNING or job.eta_seconds is None:
        return None
    return unix(now + timedelta(seconds=job.eta_seconds))


def trained_tokens(job: Job) -> int | None:
    """Known when the worker reported it (a `trained_tokens` metric)."""
    value = job.metrics.get("trained_tokens")
    return int(value) if value is not None and job.status is JobStatus.COMPLETED else None


def checkpoints_of(job: Job) -> list[dict[str, Any]]:
    """The checkpoints a job has: the model it pushed, once completed (the platform keeps no
    intermediate ones)."""
    if job.status is not JobStatus.COMPLETED:
        return []
    revision = f"@{job.output_revision}" if job.output_revision else ""
    step = job.step if job.step is not None else (job.total_steps or 0)
    loss = job.metrics.get("train_loss", job.metrics.get("loss"))
    return [
        {
            "id": f"{CHECKPOINT_PREFIX}{job.id}",
            "created_at": unix(job.completed_at or job.updated_at),
            "fine_tuned_model_checkpoint": f"{job.output_model}{revision}",
            "fine_tuning_job_id": job_ref(job.id),
            "metrics": {
                "step": float(step),
                "train_loss": loss,
                "valid_loss": job.metrics.get("eval_loss"),
            },
            "step_number": step,
        }
    ]


def _status_event(data: dict[str, Any]) -> tuple[str, str, str, dict[str, Any] | None]:
    to = data.get("to_status") or ""
    before = data.get("from_status")
    shown = STATUSES.get(JobStatus(to), to) if to in set(JobStatus) else to
    if before is None:
        message = "Fine-tuning job created; waiting for a worker."
    else:
        message = f"Job {shown}"
        if data.get("reason"):
            message += f": {data['reason']}"
        message += "."
    if data.get("error"):
        message += f" {data['error']}"
    level = {"failed": "error", "cancelled": "warn"}.get(to, "info")
    if to == "pending" and before == "running":
        level = "warn"  # an attempt ended and the job waits for the next
    return level, message, "message", None


def _progress_event(data: dict[str, Any]) -> tuple[str, str, str, dict[str, Any] | None]:
    metrics: dict[str, Any] = {
        "step": data.get("step"),
        "total_steps": data.get("total_steps"),
        "epoch": data.get("epoch"),
        "train_loss": data.get("loss"),
        **(data.get("metrics") or {}),
    }
    metrics = {k: v for k, v in metrics.items() if v is not None}
    parts = []
    if data.get("step") is not None:
        total = f"/{data['total_steps']}" if data.get("total_steps") is not None else ""
        parts.append(f"Step {data['step']}{total}")
    if data.get("loss") is not None:
        parts.append(f"training loss={data['loss']:.4f}")
    lines = [str(line) for line in data.get("log_lines") or []]
    summary = ": ".join(parts) or f"{data.get('phase', 'training')} {data.get('progress', 0):.0f}%"
    message = "\n".join([summary, *lines])
    kind = "metrics" if metrics else "message"
    return "info", message, kind, metrics or None


def event_of(row_id: int, kind: str, data: dict[str, Any], created_at: datetime) -> dict[str, Any]:
    """A history row (status change or progress report) as OpenAI's job event."""
    level, message, event_type, payload = (
        _status_event(data) if kind == "status" else _progress_event(data)
    )
    return {
        "id": f"{EVENT_PREFIX}{row_id}",
        "created_at": unix(created_at),
        "level": level,
        "message": message,
        "type": event_type,
        "data": payload,
    }


def now_utc() -> datetime:
    return datetime.now(UTC)
