"""The trainers' entry: `train()` is what the worker's toolkit (and scripts/gpu_check.py) calls.

This module imports no training library, so a box without torch imports it freely; the trainer
for the job's type is imported when `train()` is called. What it takes and returns, and the
errors it raises, are the domain's (gpu_worker.domain.training, gpu_worker.domain.errors).
"""

from __future__ import annotations

from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult


def train(req: TrainRequest, reporter: Reporter) -> TrainResult:
    """Train `req` to completion (blocking). Raises StopRequested, UserDataError or InfraError."""
    from gpu_worker.training.runner import run

    return run(req, reporter)
