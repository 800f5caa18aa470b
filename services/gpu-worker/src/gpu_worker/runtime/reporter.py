"""The Reporter a trainer is handed (gpu_worker.training.api.Reporter).

The trainer calls `progress()` from its thread as often as it likes: the call only records the
latest state under a lock. The event loop side publishes it, throttled to one report per
`interval`, and re-sends the latest state every `heartbeat` seconds even when training is silent
(a long evaluation, a slow first step): job.progress is the lease's heartbeat. A phase change is
sent at once. `should_stop()` turns true after a cancel for this attempt or a SIGTERM.
"""

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import structlog

from contracts.enums import JobPhase
from contracts.events import MAX_LOG_LINES, JobProgress

log = structlog.get_logger(__name__)


@dataclass
class ProgressState:
    progress: float = 0.0
    phase: JobPhase = JobPhase.CLAIMED
    step: int | None = None
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    eta_seconds: float | None = None
    logs_url: str | None = None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class JobReporter:
    def __init__(
        self,
        *,
        job_id: UUID,
        attempt: int,
        worker_id: str,
        claim_secret: str,
        send: Callable[[JobProgress], None],
        interval: float,
        heartbeat: float,
        on_update: Callable[[ProgressState], None] = lambda state: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self._worker_id = worker_id
        self._claim_secret = claim_secret
        self._send = send
        self._interval = min(interval, heartbeat)
        self._heartbeat = heartbeat
        self._on_update = on_update
        self._clock = clock
        self._lock = threading.Lock()
        self._state = ProgressState()
        self._lines: list[str] = []
        self._dirty = True
        self._urgent = False
        self._stop = threading.Event()
        self.stop_reason: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._last_sent = -math.inf
        self.sent = 0

    # --- the trainer's side (any thread) ----------------------------------------------------
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
    ) -> None:
        """Record the latest state (`progress` in percent, 0-100). Never blocks on the broker."""
        with self._lock:
            state = self._state
            urgent = phase is not state.phase
            value = _finite(progress)
            if value is not None:
                # Progress never goes backwards within an attempt (job-api refuses it).
                state.progress = max(state.progress, min(100.0, max(0.0, value)))
            state.phase = phase
            state.step = step if step is not None else state.step
            state.total_steps = total_steps if total_steps is not None else state.total_steps
            state.epoch = epoch if epoch is not None else state.epoch
            new_loss = _finite(loss)
            state.loss = new_loss if new_loss is not None else state.loss
            if metrics:
                state.metrics.update(
                    {k: float(v) for k, v in metrics.items() if _finite(float(v)) is not None}
                )
            eta = _finite(eta_seconds)
            state.eta_seconds = max(0.0, eta) if eta is not None else state.eta_seconds
            self._lines.extend(str(line) for line in log_lines)
            del self._lines[:-MAX_LOG_LINES]
            # The loop is woken by a phase change (sent at once) and by the first update after a
            # send: it slept for a whole heartbeat (nothing was new) and must now send within
            # `interval`. Later updates only overwrite the state.
            wake = urgent or not self._dirty
            self._urgent = self._urgent or urgent
            self._dirty = True
        if wake:
            self._wake_soon()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def set_logs_url(self, url: str | None) -> None:
        with self._lock:
            self._state.logs_url = url

    # --- the runtime's side (event loop) ----------------------------------------------------
    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()
            log.info("job.stop_requested", job_id=str(self.job_id), reason=reason)

    def _wake_soon(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def snapshot(self) -> ProgressState:
        with self._lock:
            return ProgressState(**{**self._state.__dict__, "metrics": dict(self._state.metrics)})

    def publish_now(self) -> None:
        """Send the current state (throttle and heartbeat clocks restart)."""
        with self._lock:
            state = self._state
            lines, self._lines = self._lines, []
            self._dirty = self._urgent = False
            report = JobProgress(
                job_id=self.job_id,
                attempt=self.attempt,
                worker_id=self._worker_id,
                claim_secret=self._claim_secret,
                progress=state.progress,
                phase=state.phase,
                step=state.step,
                total_steps=state.total_steps,
                epoch=state.epoch,
                loss=state.loss,
                metrics=dict(state.metrics),
                log_lines=lines,
                eta_seconds=state.eta_seconds,
                logs_url=state.logs_url,
            )
        self._send(report)
        self._last_sent = self._clock()
        self.sent += 1
        self._on_update(self.snapshot())

    async def run(self) -> None:
        """Publish until cancelled: throttled progress, the heartbeat, urgent phase changes."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.publish_now()
        wake = self._wake
        while True:
            # Cleared before the state is read: a wake-up scheduled after this line is kept.
            wake.clear()
            with self._lock:
                dirty, urgent = self._dirty, self._urgent
            due = 0.0 if urgent else self._interval if dirty else self._heartbeat
            wait = due - (self._clock() - self._last_sent)
            if wait <= 0:
                self.publish_now()
                continue
            # Until the next report is due, or the trainer has news (then the wait is recomputed).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await wake.wait()
