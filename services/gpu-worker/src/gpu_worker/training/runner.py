"""`train()`'s body: validate, read the data, dispatch to the job type's trainer, classify errors.

Imported only when a job trains: it pulls in torch and the training libraries.
"""

from __future__ import annotations

import time

import structlog
from pydantic import ValidationError

from contracts.enums import JobPhase, JobType
from contracts.hyperparameters import parse_hyperparameters
from gpu_worker.domain.errors import InfraError, StopRequested, UserDataError
from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult
from gpu_worker.training import data as data_mod

log = structlog.get_logger(__name__)


def run(req: TrainRequest, reporter: Reporter) -> TrainResult:
    try:
        hp = parse_hyperparameters(req.job_type, dict(req.hyperparameters))
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'hyperparameters'}: {e['msg']}"
            for e in exc.errors()
        )
        raise UserDataError(f"invalid hyperparameters: {reasons}") from exc
    reporter.progress(progress=0.0, phase=JobPhase.TRAINING, log_lines=("reading the data",))
    dataset = data_mod.load(req.data_path, req.data_format, req.job_type)
    req.work_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log.info(
        "train.started",
        job_id=req.job_id,
        attempt=req.attempt,
        job_type=req.job_type.value,
        rows=len(dataset.rows),
        layout=dataset.layout.value,
        resume=bool(req.resume_from),
    )
    # The libraries' first import and the model load take a while (seconds on a warm box, more
    # on a cold one): say so, rather than sit on "reading the data".
    # How many columns training leaves out, not their names: a file from the user's URL is
    # whatever its server sent, and the job's log is never to quote it.
    unused = len(dataset.unused_columns)
    ignored = f" ({unused} column{'s' * (unused > 1)} not used)" if unused else ""
    reporter.progress(
        progress=0.0,
        phase=JobPhase.TRAINING,
        log_lines=(f"read {len(dataset.rows)} rows{ignored}; loading {req.base_model}",),
    )
    try:
        result = _dispatch(req, hp, dataset, reporter)
    except (StopRequested, UserDataError, InfraError):
        raise
    except (ConnectionError, TimeoutError) as exc:
        raise InfraError(f"network: {type(exc).__name__}: {exc}") from exc
    finally:
        _finish_wandb()
    log.info(
        "train.finished",
        job_id=req.job_id,
        attempt=req.attempt,
        seconds=round(time.monotonic() - started, 1),
        metrics=result.metrics,
    )
    return result


def _finish_wandb() -> None:
    from gpu_worker.training.wandb_run import finish_wandb

    finish_wandb()


def _dispatch(
    req: TrainRequest, hp: object, dataset: data_mod.Dataset, reporter: Reporter
) -> TrainResult:
    if req.job_type is JobType.EMBEDDING:
        from gpu_worker.training.embedding import train_embedding

        return train_embedding(req, hp, dataset, reporter)
    if req.job_type is JobType.CLASSIFIER:
        from gpu_worker.training.classifier import train_classifier

        return train_classifier(req, hp, dataset, reporter)
    from gpu_worker.training.lora import train_lora

    return train_lora(req, hp, dataset, reporter)
