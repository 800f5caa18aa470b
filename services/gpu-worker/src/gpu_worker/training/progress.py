"""The TrainerCallback that reports progress and honours a stop request within one step."""

from __future__ import annotations

import math
import time
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from contracts.enums import JobPhase
from gpu_worker.domain.training import Reporter
from gpu_worker.training.wandb_run import wandb_url

# Between two log events the callback still reports this often (the reporter throttles further),
# so ETA and step move on the console and the heartbeat never starves on slow steps.
REPORT_EVERY_S = 1.0


class ProgressCallback(TrainerCallback):  # type: ignore[misc]
    """Maps Trainer events onto `Reporter.progress`; checks `Reporter.should_stop` every step.

    A stop sets `should_training_stop` and `should_save`, so the Trainer saves a checkpoint at the
    end of the current step and leaves its loop; the caller then raises StopRequested.
    Checkpoints are also taken every `checkpoint_every_s` seconds of training (by time, not steps:
    what a preempted attempt loses is bounded in minutes whatever the step time).
    """

    def __init__(
        self,
        reporter: Reporter,
        *,
        progress_from: float = 0.0,
        progress_to: float = 90.0,
        checkpoint_every_s: float | None = None,
    ):
        self.reporter = reporter
        self.checkpoint_every_s = checkpoint_every_s
        self._last_save = time.monotonic()
        self.progress_from = progress_from
        self.progress_to = progress_to
        self.stopped = False
        self.first_step_at: float | None = None
        self._t0 = 0.0
        self._step0 = 0
        self._last_report = 0.0
        self._last_loss: float | None = None
        self._lr: float | None = None

    def _percent(self, state: TrainerState) -> float:
        if not state.max_steps:
            return self.progress_from
        done = min(1.0, float(state.global_step) / float(state.max_steps))
        return self.progress_from + (self.progress_to - self.progress_from) * done

    def _rate(self, state: TrainerState) -> float | None:
        steps = state.global_step - self._step0
        elapsed = time.monotonic() - self._t0
        return steps / elapsed if steps > 0 and elapsed > 0 else None

    def _report(
        self,
        state: TrainerState,
        *,
        metrics: dict[str, float] | None = None,
        log_lines: tuple[str, ...] = (),
    ) -> None:
        rate = self._rate(state)
        eta = (state.max_steps - state.global_step) / rate if rate and state.max_steps else None
        merged: dict[str, float] = {}
        if self._lr is not None:
            merged["learning_rate"] = self._lr
        if rate is not None:
            merged["steps_per_second"] = rate
        if metrics:
            merged.update(metrics)
        self.reporter.progress(
            progress=self._percent(state),
            phase=JobPhase.TRAINING,
            step=state.global_step,
            total_steps=state.max_steps or None,
            epoch=state.epoch,
            loss=self._last_loss,
            metrics=merged,
            log_lines=log_lines,
            eta_seconds=max(0.0, eta) if eta is not None else None,
        )
        self._last_report = time.monotonic()

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._t0 = self._last_save = time.monotonic()
        self._step0 = state.global_step  # > 0 when resuming from a checkpoint
        start = "resuming at step" if self._step0 else "training started:"
        lines = [f"{start} {state.global_step}/{state.max_steps} steps"]
        url = wandb_url()
        if url:
            lines.append(f"W&B run: {url}")
        self._report(state, log_lines=tuple(lines))

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.first_step_at is None:
            self.first_step_at = time.monotonic()
        if self.reporter.should_stop():
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True
            self._report(
                state, log_lines=(f"stop requested: checkpointing at step {state.global_step}",)
            )
            return
        now = time.monotonic()
        if self.checkpoint_every_s is not None and now - self._last_save >= self.checkpoint_every_s:
            control.should_save = True
        if now - self._last_report >= REPORT_EVERY_S:
            self._report(state)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._last_save = time.monotonic()

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs:
            return
        if "loss" in logs:
            self._last_loss = float(logs["loss"])
        if "learning_rate" in logs:
            self._lr = float(logs["learning_rate"])
        numbers = {
            k: float(v)
            for k, v in logs.items()
            if isinstance(v, int | float) and math.isfinite(float(v))
        }
        shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(numbers.items()))
        self._report(
            state,
            metrics=_eval_only(numbers),
            log_lines=(f"step {state.global_step}/{state.max_steps} {shown}",),
        )


def _eval_only(logs: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in logs.items() if k.startswith("eval_") or k.endswith("per_second")}
