"""What every trainer shares: training arguments, precision, W&B, the stop/resume protocol."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from contracts.enums import JobPhase
from gpu_worker.domain.errors import InfraError, StopRequested
from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult
from gpu_worker.training.progress import ProgressCallback
from gpu_worker.training.wandb_run import finish_wandb, wandb_enabled, wandb_url

__all__ = ["finish_wandb", "wandb_url"]

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def precision() -> dict[str, bool]:
    """bf16 on GPUs that support it, fp16 on other CUDA GPUs, fp32 on CPU."""
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return {"bf16": True, "fp16": False}
        return {"bf16": False, "fp16": True}
    return {"bf16": False, "fp16": False}


def training_kwargs(req: TrainRequest, hp: Any) -> dict[str, Any]:
    """TrainingArguments shared by the three trainers.

    Several GPUs: in one process the Trainer wraps the model in DataParallel over every visible
    GPU; for DistributedDataParallel start the worker with `accelerate launch` (or torchrun): the
    Trainer reads the distributed environment that launcher sets, with no change here.
    """
    if wandb_enabled():
        os.environ.setdefault("WANDB_PROJECT", "finetune-dispatcher")
    return {
        "output_dir": str(req.checkpoints_dir),
        "num_train_epochs": hp.epochs,
        "learning_rate": hp.learning_rate,
        "per_device_train_batch_size": hp.batch_size,
        "per_device_eval_batch_size": hp.batch_size,
        "warmup_steps": hp.warmup_ratio,  # a float < 1 is a ratio of the total steps
        "seed": hp.seed,
        "data_seed": hp.seed,
        "logging_strategy": "steps",
        "logging_steps": 0.02,  # a ratio: ~50 loss points per run, at least one per step
        # Checkpoints are taken by ProgressCallback: every checkpoint_every_s() and on a stop.
        "save_strategy": "no",
        "save_total_limit": 2,
        "eval_strategy": "no",  # held-out metrics are measured before and after training
        "report_to": ["wandb"] if wandb_enabled() else "none",
        "run_name": f"{req.job_id}-attempt{req.attempt}",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "use_cpu": not torch.cuda.is_available(),
        **precision(),
    }


def checkpoint_every_s() -> float:
    """Seconds of training between two checkpoints (FTD_CHECKPOINT_EVERY_S, default 10 min)."""
    return float(os.environ.get("FTD_CHECKPOINT_EVERY_S", "600"))


def progress_callback(
    reporter: Reporter, *, start: float = 5.0, end: float = 90.0
) -> ProgressCallback:
    return ProgressCallback(
        reporter, progress_from=start, progress_to=end, checkpoint_every_s=checkpoint_every_s()
    )


def latest_checkpoint(directory: Path) -> Path | None:
    found = [
        (int(m.group(1)), p)
        for p in (directory.iterdir() if directory.is_dir() else ())
        if (m := _CHECKPOINT.match(p.name)) and p.is_dir()
    ]
    return max(found)[1] if found else None


def run_trainer(trainer: Any, req: TrainRequest, callback: ProgressCallback) -> Any:
    """trainer.train(), resuming from `req.resume_from`; StopRequested when a stop was asked."""
    resume = str(req.resume_from) if req.resume_from else None
    if req.resume_from is not None and not (req.resume_from / "trainer_state.json").is_file():
        resume = None  # not a Trainer checkpoint (or an empty one): start over, not fail
    with translate_infra_errors():
        output = trainer.train(resume_from_checkpoint=resume)
    if callback.stopped:
        raise StopRequested(latest_checkpoint(req.checkpoints_dir))
    return output


@contextmanager
def stoppable(model: torch.nn.Module, reporter: Reporter) -> Iterator[None]:
    """Within the block (an evaluation: the base model's, the tuned model's, sample generation)
    a stop is obeyed at the next forward pass, not when the phase ends: an evaluation of a large
    held-out set or a slow model takes minutes, and a cancelled job must free the GPU within
    seconds. The hooks sit on the model and its direct children, since some wrappers (a
    SentenceTransformer) call their children but not their own __call__."""

    def check(*_: object) -> None:
        if reporter.should_stop():
            raise StopRequested(None, "stopped during an evaluation")

    handles = [m.register_forward_pre_hook(check) for m in (model, *model.children())]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def check_stop(reporter: Reporter) -> None:
    """Between phases (loading, baseline evaluation) a stop has no checkpoint to save yet."""
    if reporter.should_stop():
        raise StopRequested(None)


@contextmanager
def translate_infra_errors() -> Iterator[None]:
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        raise InfraError(f"out of GPU memory: {exc}") from exc
    except MemoryError as exc:
        raise InfraError("out of memory") from exc


def loss_curve(log_history: list[dict[str, Any]]) -> dict[str, float]:
    """First and last logged training loss (the card and the tests read them)."""
    losses = [float(e["loss"]) for e in log_history if "loss" in e]
    if not losses:
        return {}
    return {"train_loss_first": losses[0], "train_loss_last": losses[-1]}


def train_result(
    req: TrainRequest,
    trainer: Any,
    *,
    tuned: dict[str, float],
    baseline: dict[str, float],
    data_stats: dict[str, Any],
    samples: list[dict[str, str]] | None = None,
) -> TrainResult:
    """What a trainer answers: the tuned model's held-out metrics with its loss curve and step
    count, the base model's metrics on the same data, and the data's statistics."""
    return TrainResult(
        model_dir=req.model_dir,
        metrics=tuned
        | loss_curve(trainer.state.log_history)
        | {"global_step": float(trainer.state.global_step)},
        baseline_metrics=baseline,
        data_stats=data_stats,
        logs_url=wandb_url(),
        samples=samples or [],
    )


def split_stats(
    data_stats: dict[str, Any], train_rows: list[Any], eval_rows: list[Any]
) -> dict[str, Any]:
    """The data's statistics with the sizes of its training and held-out parts."""
    return data_stats | {"train_rows": len(train_rows), "eval_rows": len(eval_rows)}


def report_phase(reporter: Reporter, phase: JobPhase, progress: float, line: str) -> None:
    reporter.progress(progress=progress, phase=phase, log_lines=(line,))
