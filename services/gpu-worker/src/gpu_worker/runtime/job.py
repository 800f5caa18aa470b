"""One attempt of one job, from the granted claim to its last report.

download (streamed, verified) -> look for a checkpoint of an earlier attempt -> train (a thread;
the event loop keeps the heartbeat and the broker link alive) -> publish (retried without
retraining) -> `model.pushed`. Every way out ends in exactly one outcome; the reports go through
the link's outbox, which survives a dropped connection.
"""

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from contracts.enums import FailureClass, JobPhase, ModelStore
from contracts.events import (
    MAX_ERROR_CHARS,
    JobCancelRequested,
    JobFailed,
    JobProgress,
    ModelPushed,
)
from contracts.rpc import JobSpec
from gpu_worker.publish import PublishError
from gpu_worker.runtime.checkpoint_sync import CheckpointSync
from gpu_worker.runtime.download import (
    DataCorrupted,
    DataUnavailable,
    Downloaded,
    ExternalData,
    TransientDownloadError,
    download,
    external_data_error,
)
from gpu_worker.runtime.reporter import JobReporter, ProgressState
from gpu_worker.runtime.threads import run_in_thread
from gpu_worker.training.api import (
    InfraError,
    Reporter,
    StopRequested,
    TrainRequest,
    TrainResult,
    UserDataError,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

STOP_CANCELLED = "cancelled"
STOP_SHUTDOWN = "shutdown"


def _worth_retrying(exc: BaseException) -> bool:
    if isinstance(exc, PublishError):
        return exc.retryable
    return not isinstance(exc, UserDataError)


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY = "retry"  # infra failure: reported retryable, job-api requeues it
    CANCELLED = "cancelled"
    HANDED_BACK = "handed_back"


class PublishedModel(Protocol):
    @property
    def store(self) -> ModelStore | str: ...
    @property
    def repo_id(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def uri(self) -> str: ...
    @property
    def created_repo(self) -> bool: ...


class Checkpoints(Protocol):
    """Where a checkpoint outlives its attempt, so the next one (on any worker) resumes
    (gpu_worker.publish.CheckpointStore: a shared folder, or a branch of the job's Hub repo)."""

    def save(self, job_id: str, checkpoint: Path) -> None: ...
    def fetch_latest(self, job_id: str, into: Path) -> Path | None: ...
    def discard(self, job_id: str) -> None: ...


@dataclass(frozen=True)
class Toolkit:
    """What the runtime calls to do the work; the CLI wires the real trainers and stores, tests
    wire fakes."""

    train: Callable[[TrainRequest, Reporter], TrainResult]
    # Given the claim's spec: the push uses its owner's token and store folder.
    publish: Callable[[TrainResult, TrainRequest, JobSpec], PublishedModel]
    checkpoints: Callable[[JobSpec], Checkpoints]
    # Tries of a push that failed on infrastructure; None: as many as the attempt's publish
    # window allows (JobSettings.publish_retry_seconds).
    publish_tries: int | None = 3


class Sink(Protocol):
    """Where reports go (the link's outbox)."""

    def send(self, payload: JobProgress | JobFailed | ModelPushed) -> None: ...


class Display(Protocol):
    def start_job(self, spec: JobSpec) -> None: ...
    def update(self, job_id: str, state: ProgressState) -> None: ...
    def end_job(self, job_id: str, outcome: Outcome, message: str) -> None: ...


@dataclass
class JobSettings:
    worker_id: str
    work_dir: Path
    progress_interval: float
    stop_grace: float
    # How often new checkpoints the trainer wrote are copied to the checkpoint store while it
    # trains (so a worker that dies without SIGTERM still leaves something to resume from).
    checkpoint_sync_interval: float = 30.0
    # How a URL the user gave is fetched (the operator's allow-list).
    external_data: ExternalData = field(default_factory=ExternalData)
    # A download failing on the network or a 5xx is retried (resuming) for this long.
    download_retry_seconds: float = 300.0
    # So is pushing the model (a Hub or store outage), before the attempt gives up.
    publish_retry_seconds: float = 600.0


class JobRun:
    def __init__(
        self,
        spec: JobSpec,
        *,
        settings: JobSettings,
        toolkit: Toolkit,
        sink: Sink,
        display: Display,
    ) -> None:
        self.spec = spec
        self._settings = settings
        self._toolkit = toolkit
        self._sink = sink
        self._display = display
        self.job_id = str(spec.job_id)
        self.work_dir = settings.work_dir / "jobs" / f"{spec.job_id}-{spec.attempt}"
        self.reporter = JobReporter(
            job_id=spec.job_id,
            attempt=spec.attempt,
            worker_id=settings.worker_id,
            claim_secret=spec.claim_secret,
            send=sink.send,
            interval=settings.progress_interval,
            # At least three heartbeats per lease: one lost report does not cost the job.
            heartbeat=max(0.5, spec.lease_seconds / 3),
            on_update=lambda state: display.update(self.job_id, state),
        )
        self._stopped = asyncio.Event()
        # Set by a cancel (or a revocation) only: the job is no longer ours, even mid-push.
        self._cancelled = asyncio.Event()
        self.log = log.bind(job_id=self.job_id, attempt=spec.attempt)
        self._checkpoints: Checkpoints | None = None
        self._synced: CheckpointSync | None = None

    # --- stop requests (event loop) ---------------------------------------------------------
    def on_cancel(self, event: JobCancelRequested) -> None:
        self.log.info("job.cancel_received", reason=str(event.reason))
        self._cancelled.set()
        self._request_stop(STOP_CANCELLED)
        # Also after a SIGTERM: the job is no longer ours, so no hand-back report follows.
        self.reporter.stop_reason = STOP_CANCELLED

    def on_revoked(self) -> None:
        """Our credential was revoked: the job is no longer ours (job-api requeued it), so it
        stops like a cancelled one and reports nothing more."""
        self.log.info("job.revoked")
        self._cancelled.set()
        self._request_stop(STOP_CANCELLED)
        self.reporter.stop_reason = STOP_CANCELLED

    def shutdown(self) -> None:
        self._request_stop(STOP_SHUTDOWN)

    def _request_stop(self, reason: str) -> None:
        self.reporter.request_stop(reason)
        self._stopped.set()

    async def _unless_stopped(self, work: asyncio.Future[T] | asyncio.Task[T]) -> T:
        """Await `work` unless a stop comes first (then cancel it and raise StopRequested)."""
        stop: asyncio.Future[Any] = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait([work, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not work.done():
            work.cancel()
            raise StopRequested(None, "stopped before training started")
        return work.result()

    async def _unless_cancelled(self, work: asyncio.Future[T]) -> T:
        """Await `work` (the push) unless the job is cancelled first. A SIGTERM lets the push
        finish (handing the job back would cost the whole training); a cancel does not wait for
        it: the push's thread cannot be interrupted, so it ends on its own, and nothing of it is
        reported (no model.pushed, so no model is registered)."""
        cancelled: asyncio.Future[Any] = asyncio.ensure_future(self._cancelled.wait())
        try:
            await asyncio.wait([work, cancelled], return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
        if not work.done():
            work.cancel()
            self.log.warning("job.push_abandoned")
            raise StopRequested(None, "cancelled while the model was being pushed")
        return work.result()

    # --- the attempt ------------------------------------------------------------------------
    async def run(self) -> Outcome:
        self._display.start_job(self.spec)
        self.log.info("job.started", job_type=str(self.spec.job_type), model=self.spec.base_model)
        heartbeat = asyncio.create_task(self.reporter.run(), name=f"heartbeat-{self.job_id}")
        outcome, message = Outcome.FAILED, ""
        try:
            outcome, message, final = await self._attempt()
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            shutil.rmtree(self.work_dir, ignore_errors=True)
        if final is not None:
            # After the heartbeat stopped: nothing of this attempt is sent after its last word.
            self._sink.send(final)
        self.log.info("job.finished", outcome=str(outcome), detail=message[:300])
        self._display.end_job(self.job_id, outcome, message)
        return outcome

    def _failed(self, error: str, failure_class: FailureClass, *, retryable: bool) -> JobFailed:
        return JobFailed(
            job_id=self.spec.job_id,
            attempt=self.spec.attempt,
            worker_id=self._settings.worker_id,
            claim_secret=self.spec.claim_secret,
            error=error[:MAX_ERROR_CHARS],
            failure_class=failure_class,
            retryable=retryable,
        )

    async def _attempt(self) -> tuple[Outcome, str, JobFailed | ModelPushed | None]:
        try:
            return await self._work()
        except StopRequested as stop:
            return self._stopped_with(stop)
        except (UserDataError, DataUnavailable) as exc:
            message = str(exc) or type(exc).__name__
            if isinstance(exc, UserDataError) and self.spec.data.external:
                # The file is what a user's URL served: say what is wrong, never quote it.
                message = external_data_error(exc, self.spec.job_type)
            return (
                Outcome.FAILED,
                message,
                self._failed(message, FailureClass.USER_ERROR, retryable=False),
            )
        except PublishError as exc:
            # The model trained but could not be stored; a refusal (bad token, no write access)
            # is not retried, the rest is.
            message = f"pushing the model failed: {exc}"
            failed = self._failed(message, FailureClass.INFRA_ERROR, retryable=exc.retryable)
            return (Outcome.RETRY if exc.retryable else Outcome.FAILED), message, failed
        except (InfraError, DataCorrupted, TransientDownloadError, OSError, MemoryError) as exc:
            message = str(exc) or type(exc).__name__
            return (
                Outcome.RETRY,
                message,
                self._failed(message, FailureClass.INFRA_ERROR, retryable=True),
            )
        except Exception as exc:
            # Includes torch's OutOfMemoryError and anything a trainer did not classify: the
            # platform's fault until shown otherwise, so another attempt gets a chance.
            self.log.exception("job.crashed")
            message = f"the worker failed: {type(exc).__name__}: {exc}"
            if self.spec.data.external:
                message = f"the worker failed: {type(exc).__name__}"
            return (
                Outcome.RETRY,
                message,
                self._failed(message, FailureClass.INFRA_ERROR, retryable=True),
            )

    def _stopped_with(self, stop: StopRequested) -> tuple[Outcome, str, JobFailed | None]:
        saved = stop.checkpoint is not None and self._save_checkpoint(stop.checkpoint)
        if self.reporter.stop_reason == STOP_CANCELLED:
            # job-api already moved the job on (cancelled, or another attempt holds it): a report
            # from us would be stale.
            return Outcome.CANCELLED, "cancelled", None
        where = "from its checkpoint" if saved else "from the start"
        if self._synced is not None and self._synced.last is not None and not saved:
            where = "from the last checkpoint saved during training"
        message = (
            "The worker was shut down (SIGTERM) and handed the job back; the next attempt "
            f"resumes {where}."
            if self.reporter.stop_reason == STOP_SHUTDOWN
            else f"Training stopped unexpectedly ({stop}); the job goes back to the queue."
        )
        failed = self._failed(message, FailureClass.INFRA_ERROR, retryable=True)
        return Outcome.HANDED_BACK, message, failed

    def _save_checkpoint(self, checkpoint: Path) -> bool:
        if self._checkpoints is None:
            return False
        try:
            self._checkpoints.save(self.job_id, checkpoint)
        except Exception:
            self.log.exception("checkpoint.save_failed", checkpoint=checkpoint.name)
            return False
        self.log.info("checkpoint.saved", checkpoint=checkpoint.name)
        return True

    async def _work(self) -> tuple[Outcome, str, ModelPushed]:
        spec = self.spec
        self.reporter.progress(progress=0, phase=JobPhase.DOWNLOADING)
        data: Downloaded = await self._unless_stopped(
            asyncio.ensure_future(
                download(
                    spec.data,
                    self.work_dir / "data",
                    external=self._settings.external_data,
                    retry_for=self._settings.download_retry_seconds,
                    on_retry=lambda message: self.reporter.progress(
                        progress=0, phase=JobPhase.DOWNLOADING, log_lines=[message]
                    ),
                )
            )
        )
        checkpoints = self._checkpoints = self._toolkit.checkpoints(spec)
        resume = await run_in_thread(
            checkpoints.fetch_latest, self.job_id, self.work_dir / "resume", name="fetch-checkpoint"
        )
        if resume is not None:
            self.log.info("job.resuming", checkpoint=resume.name)
        request = TrainRequest(
            job_id=self.job_id,
            attempt=spec.attempt,
            job_type=spec.job_type,
            base_model=spec.base_model,
            output_model=spec.output_model,
            hyperparameters=dict(spec.hyperparameters),
            data_path=data.path,
            data_format=data.format,
            work_dir=self.work_dir,
            resume_from=resume,
        )
        self.reporter.progress(
            progress=0,
            phase=JobPhase.TRAINING,
            log_lines=[f"data: {data.size_bytes} bytes ({data.format}), sha256 {data.sha256}"]
            + (["resuming from the checkpoint of an earlier attempt"] if resume else []),
        )
        self._synced = CheckpointSync(
            request.checkpoints_dir, lambda path: self._save_checkpoint(path)
        )
        sync = asyncio.create_task(
            self._synced.run(self._settings.checkpoint_sync_interval), name="checkpoint-sync"
        )
        try:
            result = await self._train(request)
        finally:
            sync.cancel()
            await asyncio.gather(sync, return_exceptions=True)
        self.reporter.set_logs_url(getattr(result, "logs_url", None))
        self.reporter.progress(progress=100, phase=JobPhase.UPLOADING)
        published = await self._unless_cancelled(
            asyncio.ensure_future(self._publish(result, request))
        )
        pushed = ModelPushed(
            job_id=spec.job_id,
            attempt=spec.attempt,
            worker_id=self._settings.worker_id,
            claim_secret=spec.claim_secret,
            repo_id=published.repo_id,
            revision=published.revision,
            store=ModelStore(published.store),
            uri=published.uri,
            created_repo=published.created_repo,
            metrics=result.metrics,
            baseline_metrics=result.baseline_metrics,
            data_stats=result.data_stats,
            logs_url=getattr(result, "logs_url", None),
        )
        try:
            # The model is stored: the checkpoints of this job are of no further use.
            await run_in_thread(checkpoints.discard, self.job_id, name="discard-checkpoints")
        except Exception:
            self.log.warning("checkpoint.discard_failed", exc_info=True)
        return Outcome.COMPLETED, f"pushed {published.uri}", pushed

    async def _train(self, request: TrainRequest) -> TrainResult:
        reporter: Reporter = self.reporter  # checked: JobReporter is the trainers' Reporter
        training = asyncio.ensure_future(
            run_in_thread(self._toolkit.train, request, reporter, name=f"train-{self.job_id}")
        )
        stop = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({training, stop}, return_when=asyncio.FIRST_COMPLETED)
            if training.done():
                return training.result()
            # A stop was asked: the trainer stops within one step (it raises StopRequested).
            # A cancel waits for it (the GPU is not free before); a shutdown waits `stop_grace`.
            grace = (
                self._settings.stop_grace if self.reporter.stop_reason == STOP_SHUTDOWN else None
            )
            done, _ = await asyncio.wait({training}, timeout=grace)
            if not done:
                self.log.warning("job.trainer_did_not_stop", grace_seconds=grace)
                raise StopRequested(None, "the trainer did not stop in time")
            return training.result()
        finally:
            stop.cancel()

    async def _publish(self, result: TrainResult, request: TrainRequest) -> PublishedModel:
        tries = self._toolkit.publish_tries
        window = stop_after_delay(self._settings.publish_retry_seconds)
        stop = window if tries is None else window | stop_after_attempt(tries)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_worth_retrying),
            stop=stop,
            wait=wait_exponential(multiplier=1, max=30),
            reraise=True,
        ):
            with attempt:
                number = attempt.retry_state.attempt_number
                if number > 1:
                    self.log.info("model.publish_retry", try_number=number)
                    self.reporter.progress(
                        progress=100,
                        phase=JobPhase.UPLOADING,
                        log_lines=[
                            f"push failed; retrying (try {number}"
                            + (f" of {tries})" if tries is not None else ")")
                        ],
                    )
                return await run_in_thread(
                    self._toolkit.publish, result, request, self.spec, name=f"publish-{self.job_id}"
                )
        raise AssertionError("unreachable")
