"""One attempt of one job, from the granted claim to its last report.

download (streamed, verified) -> look for a checkpoint of an earlier attempt -> train (a thread;
the event loop keeps the heartbeat and the broker link alive) -> publish (retried without
retraining) -> `model.pushed`. Every way out ends in exactly one outcome (the rules are
gpu_worker.domain.outcome's); the reports go through the link's outbox, which survives a dropped
connection.
"""

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from contracts.enums import JobPhase, ModelStore
from contracts.events import MAX_ERROR_CHARS, JobCancelRequested, JobFailed, ModelPushed
from contracts.rpc import JobSpec
from gpu_worker.domain.errors import StopRequested
from gpu_worker.domain.outcome import (
    Outcome,
    StopReason,
    Verdict,
    judge_error,
    judge_stop,
    publish_worth_retrying,
)
from gpu_worker.domain.progress import heartbeat_for
from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult
from gpu_worker.service_layer.ports import (
    CheckpointStore,
    CheckpointWatch,
    Display,
    Downloaded,
    PublishedModel,
    ReportSink,
    Toolkit,
)
from gpu_worker.service_layer.reporter import JobReporter, attempt_trace

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass
class JobSettings:
    worker_id: str
    work_dir: Path
    progress_interval: float
    stop_grace: float
    # How often new checkpoints the trainer wrote are copied to the checkpoint store while it
    # trains (so a worker that dies without SIGTERM still leaves something to resume from).
    checkpoint_sync_interval: float = 30.0
    # How long pushing the model (a Hub or store outage) is retried before the attempt gives up.
    publish_retry_seconds: float = 600.0


class JobRun:
    def __init__(
        self,
        spec: JobSpec,
        *,
        settings: JobSettings,
        toolkit: Toolkit,
        sink: ReportSink,
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
            heartbeat=heartbeat_for(spec.lease_seconds),
            on_update=lambda state: display.update(self.job_id, state),
        )
        self._stopped = asyncio.Event()
        # Set by a cancel (or a revocation) only: the job is no longer ours, even mid-push.
        self._cancelled = asyncio.Event()
        self.log = log.bind(job_id=self.job_id, attempt=spec.attempt)
        self._checkpoints: CheckpointStore | None = None
        self._synced: CheckpointWatch | None = None

    # --- stop requests (event loop) ---------------------------------------------------------
    def on_cancel(self, event: JobCancelRequested) -> None:
        self.log.info("job.cancel_received", reason=str(event.reason))
        self._no_longer_ours()

    def on_revoked(self) -> None:
        """Our credential was revoked: the job is no longer ours (job-api requeued it), so it
        stops like a cancelled one and reports nothing more."""
        self.log.info("job.revoked")
        self._no_longer_ours()

    def _no_longer_ours(self) -> None:
        self._cancelled.set()
        self._request_stop(StopReason.CANCELLED)
        # Also after a SIGTERM: the job is no longer ours, so no hand-back report follows.
        self.reporter.stop_reason = StopReason.CANCELLED

    def shutdown(self) -> None:
        self._request_stop(StopReason.SHUTDOWN)

    def _request_stop(self, reason: StopReason) -> None:
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
        with attempt_trace(self.spec):  # the heartbeat task below copies it
            return await self._run()

    async def _run(self) -> Outcome:
        self._display.start_job(self.spec)
        self.log.info("job.started", job_type=str(self.spec.job_type), model=self.spec.base_model)
        heartbeat = asyncio.create_task(self.reporter.run(), name=f"heartbeat-{self.job_id}")
        outcome, message, final = Outcome.FAILED, "", None
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

    async def _attempt(self) -> tuple[Outcome, str, JobFailed | ModelPushed | None]:
        try:
            return await self._work()
        except StopRequested as stop:
            verdict = self._stopped_with(stop)
        except Exception as exc:
            verdict = judge_error(
                exc, job_type=self.spec.job_type, external_data=self.spec.data.external
            )
            if verdict.unexpected:
                self.log.exception("job.crashed")
        return verdict.outcome, verdict.message, self._failed(verdict)

    def _failed(self, verdict: Verdict) -> JobFailed | None:
        if verdict.failure_class is None:
            return None
        return JobFailed(
            job_id=self.spec.job_id,
            attempt=self.spec.attempt,
            worker_id=self._settings.worker_id,
            claim_secret=self.spec.claim_secret,
            error=verdict.message[:MAX_ERROR_CHARS],
            failure_class=verdict.failure_class,
            retryable=verdict.retryable,
        )

    def _stopped_with(self, stop: StopRequested) -> Verdict:
        saved = stop.checkpoint is not None and self._save_checkpoint(stop.checkpoint)
        return judge_stop(
            stop,
            self.reporter.stop_reason,
            saved=saved,
            synced_during_training=self._synced is not None and self._synced.last is not None,
        )

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

    async def _download(self) -> Downloaded:
        def retrying(message: str) -> None:
            self.reporter.progress(progress=0, phase=JobPhase.DOWNLOADING, log_lines=[message])

        self.reporter.progress(progress=0, phase=JobPhase.DOWNLOADING)
        fetch = self._toolkit.data.fetch(self.spec.data, self.work_dir / "data", on_retry=retrying)
        return await self._unless_stopped(asyncio.ensure_future(fetch))

    async def _work(self) -> tuple[Outcome, str, ModelPushed]:
        spec, threads = self.spec, self._toolkit.in_thread
        data = await self._download()
        checkpoints = self._checkpoints = self._toolkit.checkpoints(spec)
        resume = await threads(
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
        self._synced = self._toolkit.watch_checkpoints(
            request.checkpoints_dir, self._save_checkpoint
        )
        sync = asyncio.create_task(
            self._synced.run(self._settings.checkpoint_sync_interval), name="checkpoint-sync"
        )
        try:
            result = await self._train(request)
        finally:
            sync.cancel()
            await asyncio.gather(sync, return_exceptions=True)
        self.reporter.set_logs_url(result.logs_url)
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
            logs_url=result.logs_url,
        )
        try:
            # The model is stored: the checkpoints of this job are of no further use.
            await threads(checkpoints.discard, self.job_id, name="discard-checkpoints")
        except Exception:
            self.log.warning("checkpoint.discard_failed", exc_info=True)
        return Outcome.COMPLETED, f"pushed {published.uri}", pushed

    async def _train(self, request: TrainRequest) -> TrainResult:
        reporter: Reporter = self.reporter  # checked: JobReporter is the trainers' Reporter
        training = asyncio.ensure_future(
            self._toolkit.in_thread(
                self._toolkit.train, request, reporter, name=f"train-{self.job_id}"
            )
        )
        stop = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({training, stop}, return_when=asyncio.FIRST_COMPLETED)
            if training.done():
                return training.result()
            # A stop was asked: the trainer stops within one step (it raises StopRequested).
            # A cancel waits for it (the GPU is not free before); a shutdown waits `stop_grace`.
            shutdown = self.reporter.stop_reason is StopReason.SHUTDOWN
            grace = self._settings.stop_grace if shutdown else None
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
            retry=retry_if_exception(publish_worth_retrying),
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
                return await self._toolkit.in_thread(
                    self._toolkit.publish, result, request, self.spec, name=f"publish-{self.job_id}"
                )
        raise AssertionError("unreachable")
