"""What an attempt asks of a trainer and what it gets back.

The service layer builds a `TrainRequest`, hands the trainer a `Reporter` and runs it in a thread;
the trainers (gpu_worker.training) read the request and report through the protocol. Plain data:
no training library, so a box without torch imports it freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Unpack

from contracts.enums import JobType
from gpu_worker.domain.progress import ProgressUpdate

DataFormat = Literal["csv", "jsonl"]


@dataclass(frozen=True)
class TrainRequest:
    job_id: str
    attempt: int
    job_type: JobType
    base_model: str
    output_model: str
    hyperparameters: dict[str, Any]  # validated by contracts.hyperparameters
    data_path: Path
    data_format: DataFormat
    work_dir: Path  # scratch; checkpoints under work_dir / "checkpoints"
    resume_from: Path | None = None  # a checkpoint dir from a previous attempt, if any

    @property
    def checkpoints_dir(self) -> Path:
        return self.work_dir / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.work_dir / "model"


class Reporter(Protocol):
    """Thread-safe and non-blocking: the service layer throttles and publishes."""

    def progress(self, **update: Unpack[ProgressUpdate]) -> None:
        """Record the latest state (gpu_worker.domain.progress.ProgressUpdate)."""
        ...

    def should_stop(self) -> bool:
        """True after a cancel or SIGTERM: the trainer saves a checkpoint, raises StopRequested."""
        ...


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    data_stats: dict[str, Any]
    # Additions beyond the minimum, defaulted: the W&B run page, and (LoRA) a few generations of
    # the base and tuned model on held-out prompts for the model card.
    logs_url: str | None = None
    samples: list[dict[str, str]] = field(default_factory=list)
