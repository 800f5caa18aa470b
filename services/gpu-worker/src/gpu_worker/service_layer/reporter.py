"""The Reporter a trainer is handed (gpu_worker.domain.training.Reporter).

The trainer calls `progress()` from its thread as often as it likes: the call only records the
latest state under a lock. The event loop side publishes it when the progress rules
(gpu_worker.domain.progress) say a report is due: throttled to one per `interval`, the latest
state again every `heartbeat` seconds even when training is silent, a phase change at once.
`should_stop()` turns true after a cancel for this attempt or a SIGTERM.
"""

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Unpack
from uuid import UUID

import structlog

from contracts.events import JobProgress, Trace, within
from contracts.rpc import JobSpec
from contracts.worker_reports import Progress
from gpu_worker.domain.outcome import StopReason
from gpu_worker.domain.progress import ProgressBook, ProgressUpdate

log = structlog.get_logger(__name__)


@contextlib.contextmanager
def attempt_trace(spec: JobSpec) -> Iterator[None]:
    """While the attempt runs: its reports carry the job's correlation id and name the claim
    that granted it as their cause, and every log line carries both. A job-api that sends no
    correlation id leaves the reports to start chains of their own."""
    if spec.correlation_id is None:
        yield
        return
    fields = {"correlation_id": spec.correlation_id}
    if spec.causation_id is not None:
        fields["causation_id"] = spec.causation_id
    with (
        within(Trace(spec.correlation_id, spec.causation_id)),
        structlog.contextvars.bound_contextvars(**fields),
    ):
        yield


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
        on_update: Callable[[Progress], None] = lambda state: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self._worker_id = worker_id
        self._claim_secret = claim_secret
        self._send = send
        self._on_update = on_update
        self._clock = clock
        self._lock = threading.Lock()
        self._book = ProgressBook(interval=interval, heartbeat=heartbeat)
        self._stop = threading.Event()
        self.stop_reason: StopReason | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._last_sent = -math.inf
        self.sent = 0

    # --- the trainer's side (any thread) ----------------------------------------------------
    def progress(self, **update: Unpack[ProgressUpdate]) -> None:
        """Record the latest state (`progress` in percent, 0-100). Never blocks on the broker."""
        with self._lock:
            wake = self._book.record(**update)
        if wake:
            self._wake_soon()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def set_logs_url(self, url: str | None) -> None:
        with self._lock:
            self._book.state.logs_url = url

    # --- the attempt's side (event loop) ----------------------------------------------------
    def request_stop(self, reason: StopReason) -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()
            log.info("job.stop_requested", job_id=str(self.job_id), reason=str(reason))

    def _wake_soon(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def snapshot(self) -> Progress:
        with self._lock:
            return self._book.state.copy()

    def publish_now(self) -> None:
        """Send the current state (throttle and heartbeat clocks restart)."""
        with self._lock:
            state, lines = self._book.take()
        self._send(
            JobProgress.of(
                state,
                job_id=self.job_id,
                attempt=self.attempt,
                worker_id=self._worker_id,
                claim_secret=self._claim_secret,
                log_lines=lines,
            )
        )
        self._last_sent = self._clock()
        self.sent += 1
        self._on_update(state)

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
                wait = self._book.due_in(self._clock() - self._last_sent)
            if wait <= 0:
                self.publish_now()
                continue
            # Until the next report is due, or the trainer has news (then the wait is recomputed).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await wake.wait()
