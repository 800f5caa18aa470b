"""The interface between the worker runtime and the trainers.

The runtime builds a `TrainRequest`, hands `train()` a `Reporter` and runs it in a thread. This
module imports no training library: the runtime (and a box without torch) can import it freely;
the trainer for the job's type is imported when `train()` is called.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from contracts.enums import JobPhase, JobType


@dataclass(frozen=True)
class TrainRequest:
    job_id: str
    attempt: int
    job_type: JobType
    base_model: str
    output_model: str
    hyperparameters: dict[str, Any]  # validated by contracts.hyperparameters
    data_path: Path
    data_format: Literal["csv", "jsonl"]
    work_dir: Path  # scratch; checkpoints under work_dir / "checkpoints"
    resume_from: Path | None = None  # a checkpoint dir from a previous attempt, if any

    @property
    def checkpoints_dir(self) -> Path:
        return self.work_dir / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.work_dir / "model"


class Reporter(Protocol):
    """Thread-safe and non-blocking: the runtime throttles and publishes."""

    def progress(
        self,
        *,
        progress: float,
        phase: JobPhase = JobPhase.TRAINING,
        step: int | None = None,
        total_steps: int | None = None,
        epoch: float | None = None,
        loss: float | None = None,
        metrics: Mapping[str, float] | None = None,
        log_lines: Sequence[str] = (),
        eta_seconds: float | None = None,
    ) -> None: ...

    def should_stop(self) -> bool:
        """True after a cancel or SIGTERM: the trainer saves a checkpoint, raises StopRequested."""
        ...


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    data_stats: dict[str, Any]
    # Additions beyond the runtime's minimum, defaulted: the W&B run page, and (LoRA) a few
    # generations of the base and tuned model on held-out prompts for the model card.
    logs_url: str | None = None
    samples: list[dict[str, str]] = field(default_factory=list)


class StopRequested(Exception):
    """Training stopped on request; `checkpoint` is where it was saved (None: before step 1)."""

    def __init__(self, checkpoint: Path | None, message: str = "training stopped on request"):
        super().__init__(message)
        self.checkpoint = checkpoint


class UserDataError(Exception):
    """Bad data or configuration: failure_class user_error, not retried. The message says why."""


class InfraError(Exception):
    """Out of memory, network, preemption: failure_class infra_error, retried."""


def train(req: TrainRequest, reporter: Reporter) -> TrainResult:
    """Train `req` to completion (blocking). Raises StopRequested, UserDataError or InfraError."""
    from gpu_worker.training.runner import run

    return run(req, reporter)
