"""An attempt's progress and when it is reported.

job.progress doubles as the lease's heartbeat: a report goes out at least every `heartbeat`
seconds even when training is silent (a long evaluation, a slow first step), news is reported
within `interval`, and a phase change at once. Progress never goes backwards within an attempt
(job-api refuses it), and numbers that are not finite are dropped rather than sent.

`ProgressBook` holds these rules with no lock and no clock of its own: the reporter
(gpu_worker.service_layer.reporter) serialises the calls and says how long ago it last sent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Required, TypedDict, Unpack

from contracts.enums import JobPhase
from contracts.worker_reports import MAX_LOG_LINES, Progress


class ProgressUpdate(TypedDict, total=False):
    """What a trainer reports (`Reporter.progress`): `progress` in percent (0-100); the rest
    default to the phase `training` and to what was reported before."""

    progress: Required[float]
    phase: JobPhase
    step: int | None
    total_steps: int | None
    epoch: float | None
    loss: float | None
    metrics: Mapping[str, float] | None
    log_lines: Sequence[str]
    eta_seconds: float | None


def heartbeat_for(lease_seconds: float) -> float:
    """At least three heartbeats per lease: one lost report does not cost the job."""
    return max(0.5, lease_seconds / 3)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class ProgressBook:
    """The latest state of one attempt, the log lines not reported yet, and when the next report
    is due."""

    def __init__(self, *, interval: float, heartbeat: float) -> None:
        self.interval = min(interval, heartbeat)
        self.heartbeat = heartbeat
        self.state = Progress(phase=JobPhase.CLAIMED)
        self._lines: list[str] = []
        # Something changed since the last report (the first report is due at once).
        self.dirty = True
        # A phase changed since the last report: it is sent at once.
        self.urgent = False

    def record(self, **update: Unpack[ProgressUpdate]) -> bool:
        """Merge an update. True when whoever sends the reports must look again now: the phase
        changed (sent at once), or this is the first news since the last report (whoever sends
        slept for a whole heartbeat and must now send within `interval`). Later updates only
        overwrite the state."""
        state = self.state
        phase = update.get("phase", JobPhase.TRAINING)
        step, total_steps = update.get("step"), update.get("total_steps")
        epoch, metrics = update.get("epoch"), update.get("metrics")
        urgent = phase is not state.phase
        value = _finite(update["progress"])
        if value is not None:
            state.progress = max(state.progress, min(100.0, max(0.0, value)))
        state.phase = phase
        state.step = step if step is not None else state.step
        state.total_steps = total_steps if total_steps is not None else state.total_steps
        state.epoch = epoch if epoch is not None else state.epoch
        new_loss = _finite(update.get("loss"))
        state.loss = new_loss if new_loss is not None else state.loss
        if metrics:
            state.metrics.update(
                {k: float(v) for k, v in metrics.items() if _finite(float(v)) is not None}
            )
        eta = _finite(update.get("eta_seconds"))
        state.eta_seconds = max(0.0, eta) if eta is not None else state.eta_seconds
        self._lines.extend(str(line) for line in update.get("log_lines", ()))
        del self._lines[:-MAX_LOG_LINES]
        wake = urgent or not self.dirty
        self.urgent = self.urgent or urgent
        self.dirty = True
        return wake

    def take(self) -> tuple[Progress, list[str]]:
        """What the next report says: the state and the log lines since the last one."""
        lines, self._lines = self._lines, []
        self.dirty = self.urgent = False
        return self.state.copy(), lines

    def due_in(self, since_last: float) -> float:
        """Seconds until the next report is due, `since_last` seconds after the last one (zero
        or less: now)."""
        due = 0.0 if self.urgent else self.interval if self.dirty else self.heartbeat
        return due - since_last
