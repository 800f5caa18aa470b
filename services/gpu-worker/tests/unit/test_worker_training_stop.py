"""The trainers' stop path without training a model: a stop asked through the Reporter ends the
Trainer's loop at the next step with a checkpoint, and `run_trainer` raises StopRequested naming
the newest one; between phases and during evaluations a stop is obeyed at once
(gpu_worker.training.common, gpu_worker.training.progress). A cancel of an attempt mid-training
ends it at a step boundary, cancelled, its checkpoint stored (gpu_worker.service_layer.attempt)."""

import asyncio
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from contracts.enums import CancelReason, JobType  # noqa: E402
from contracts.events import JobCancelRequested, JobFailed, JobProgress, ModelPushed  # noqa: E402
from contracts.rpc import DataTicket, JobSpec  # noqa: E402
from contracts.worker_reports import Progress  # noqa: E402
from gpu_worker.adapters.checkpoint_sync import CheckpointSync  # noqa: E402
from gpu_worker.adapters.threads import run_in_thread  # noqa: E402
from gpu_worker.domain.errors import InfraError, StopRequested  # noqa: E402
from gpu_worker.domain.outcome import Outcome  # noqa: E402
from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult  # noqa: E402
from gpu_worker.service_layer.attempt import JobRun, JobSettings  # noqa: E402
from gpu_worker.service_layer.ports import Downloaded, Toolkit  # noqa: E402
from gpu_worker.training import common  # noqa: E402
from gpu_worker.training.progress import ProgressCallback  # noqa: E402


class Switch:
    """A Reporter whose stop is asked by flipping `stop`."""

    def __init__(self) -> None:
        self.stop = False
        self.reports: list[dict[str, Any]] = []

    def progress(self, **report: Any) -> None:
        self.reports.append(report)

    def should_stop(self) -> bool:
        return self.stop


class LoopTrainer:
    """What transformers' Trainer does with its callbacks, minus the model: each step ends with
    on_step_end; a checkpoint is written when the callback asks for one, and the loop is left
    when it says so. A stop is asked during step `stop_at`."""

    def __init__(
        self,
        req: TrainRequest,
        callback: ProgressCallback,
        steps: int = 20,
        stop_at: int | None = None,
        during_step: Callable[[int], None] | None = None,
    ) -> None:
        self.req, self.callback, self.steps, self.stop_at = req, callback, steps, stop_at
        self.during_step = during_step
        self.resumed_from: Any = "not called"
        self.saves = True

    def train(self, resume_from_checkpoint: str | None = None) -> str:
        self.resumed_from = resume_from_checkpoint
        state = transformers.TrainerState(max_steps=self.steps)
        control = transformers.TrainerControl()
        self.callback.on_train_begin(None, state, control)
        for step in range(1, self.steps + 1):
            state.global_step = step
            if step == self.stop_at:
                self.callback.reporter.stop = True
            if self.during_step is not None:
                self.during_step(step)
            self.callback.on_step_end(None, state, control)
            if control.should_save and self.saves:
                folder = self.req.checkpoints_dir / f"checkpoint-{step}"
                folder.mkdir(parents=True)
                (folder / "trainer_state.json").write_text("{}")
                self.callback.on_save(None, state, control)
            control.should_save = False
            if control.should_training_stop:
                break
        return "trained"


def request(tmp_path: Path, resume_from: Path | None = None) -> TrainRequest:
    return TrainRequest(
        job_id="job-1",
        attempt=2,
        job_type=JobType.CLASSIFIER,
        base_model="m",
        output_model="alice/m",
        hyperparameters={},
        data_path=tmp_path / "data.csv",
        data_format="csv",
        work_dir=tmp_path / "work",
        resume_from=resume_from,
    )


def test_a_stop_ends_training_at_the_next_step_with_the_newest_checkpoint(tmp_path: Path) -> None:
    req = request(tmp_path)
    reporter = Switch()
    # A checkpoint after every step (the time-based rule with no wait): checkpoint-9 sorts after
    # checkpoint-12 by name, so only a numeric choice names the right one.
    callback = ProgressCallback(reporter, checkpoint_every_s=0)
    trainer = LoopTrainer(req, callback, stop_at=12)

    with pytest.raises(StopRequested) as caught:
        common.run_trainer(trainer, req, callback)

    assert caught.value.checkpoint == req.checkpoints_dir / "checkpoint-12"
    assert callback.stopped
    assert not (req.checkpoints_dir / "checkpoint-13").exists(), "the loop went on after the stop"
    assert any(
        "stop requested: checkpointing at step 12" in r["log_lines"] for r in reporter.reports
    )


def test_a_stop_before_any_checkpoint_names_none(tmp_path: Path) -> None:
    req = request(tmp_path)
    callback = ProgressCallback(Switch())
    trainer = LoopTrainer(req, callback, stop_at=3)
    trainer.saves = False
    with pytest.raises(StopRequested) as caught:
        common.run_trainer(trainer, req, callback)
    assert caught.value.checkpoint is None


def test_training_that_was_not_stopped_returns_what_the_trainer_returned(tmp_path: Path) -> None:
    req = request(tmp_path)
    callback = ProgressCallback(Switch(), checkpoint_every_s=3600)
    assert common.run_trainer(LoopTrainer(req, callback, steps=5), req, callback) == "trained"
    assert not callback.stopped
    assert common.latest_checkpoint(req.checkpoints_dir) is None


def test_an_attempt_resumes_only_from_a_trainer_checkpoint(tmp_path: Path) -> None:
    real = tmp_path / "resume" / "checkpoint-7"
    real.mkdir(parents=True)
    (real / "trainer_state.json").write_text("{}")
    empty = tmp_path / "resume" / "checkpoint-8"
    empty.mkdir()
    for resume_from, expected in ((real, str(real)), (empty, None), (None, None)):
        req = request(tmp_path / str(expected), resume_from=resume_from)
        callback = ProgressCallback(Switch())
        trainer = LoopTrainer(req, callback, steps=1)
        common.run_trainer(trainer, req, callback)
        assert trainer.resumed_from == expected


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (MemoryError(), "out of memory"),
        (
            torch.cuda.OutOfMemoryError("CUDA out of memory"),
            "out of GPU memory: CUDA out of memory",
        ),
    ],
)
def test_running_out_of_memory_is_the_platforms_trouble(
    tmp_path: Path, raised: BaseException, message: str
) -> None:
    class Exhausted:
        def train(self, resume_from_checkpoint: str | None = None) -> None:
            raise raised

    req = request(tmp_path)
    with pytest.raises(InfraError) as caught:
        common.run_trainer(Exhausted(), req, ProgressCallback(Switch()))
    assert str(caught.value) == message


def test_the_newest_checkpoint_is_chosen_by_step_among_checkpoint_folders(tmp_path: Path) -> None:
    for name in ("checkpoint-9", "checkpoint-10", "checkpoint-x", "runs"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-11").write_text("a file, not a checkpoint")
    assert common.latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert common.latest_checkpoint(tmp_path / "absent") is None


def test_a_stop_between_phases_has_no_checkpoint_to_name() -> None:
    reporter = Switch()
    common.check_stop(reporter)
    reporter.stop = True
    with pytest.raises(StopRequested) as caught:
        common.check_stop(reporter)
    assert caught.value.checkpoint is None


def test_an_evaluation_stops_at_the_next_forward_pass_and_the_hooks_go_with_the_block() -> None:
    class Wrapper(torch.nn.Module):  # type: ignore[misc]
        """Calls its child but not its own __call__, as a SentenceTransformer's encode does."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = torch.nn.Linear(2, 2)

        def forward(self, x: Any) -> Any:
            return self.inner(x)

    model, reporter, x = Wrapper(), Switch(), torch.zeros(1, 2)
    with common.stoppable(model, reporter):
        model(x)
        reporter.stop = True
        with pytest.raises(StopRequested, match="stopped during an evaluation") as caught:
            model(x)
        assert caught.value.checkpoint is None
        with pytest.raises(StopRequested):
            model.forward(x)
    model(x)
    model.forward(x)


class Sink:
    def __init__(self) -> None:
        self.sent: list[JobProgress | JobFailed | ModelPushed] = []

    def send(self, payload: JobProgress | JobFailed | ModelPushed) -> None:
        self.sent.append(payload)


class Screen:
    def start_job(self, spec: JobSpec) -> None:
        pass

    def update(self, job_id: str, state: Progress) -> None:
        pass

    def end_job(self, job_id: str, outcome: Outcome, message: str) -> None:
        pass


class Store:
    """A checkpoint store that keeps the names of what it was given."""

    def __init__(self) -> None:
        self.saved: list[str] = []

    def save(self, job_id: str, checkpoint: Path) -> None:
        self.saved.append(checkpoint.name)

    def fetch_latest(self, job_id: str, into: Path) -> Path | None:
        return None

    def discard(self, job_id: str) -> None:
        raise AssertionError("a cancelled attempt keeps its checkpoints")


class OneFile:
    @staticmethod
    def _write(target_dir: Path) -> Downloaded:
        target_dir.mkdir(parents=True, exist_ok=True)
        path = target_dir / "data.csv"
        path.write_text("text,label\na,x\n")
        return Downloaded(path, path.stat().st_size, "0" * 64, "csv")

    async def fetch(
        self, ticket: DataTicket, target_dir: Path, *, on_retry: Callable[[str], None]
    ) -> Downloaded:
        return await asyncio.to_thread(self._write, target_dir)


def never_published(result: TrainResult, req: TrainRequest, spec: JobSpec) -> Any:
    raise AssertionError("a cancelled attempt publishes nothing")


async def test_a_cancel_mid_training_ends_the_attempt_cancelled_at_a_step_with_its_checkpoint(
    tmp_path: Path,
) -> None:
    spec = JobSpec(
        job_id=uuid.uuid4(),
        attempt=1,
        claim_secret="secret-value",
        job_type=JobType.CLASSIFIER,
        base_model="m",
        output_model="alice/m",
        hyperparameters={},
        data=DataTicket(url="https://data/x?ticket=t"),
        lease_seconds=30,
        lease_expires_at=datetime.now(UTC) + timedelta(seconds=30),
    )
    at_step_12 = threading.Event()
    trained_steps: list[int] = []

    def train(req: TrainRequest, reporter: Reporter) -> TrainResult:
        def during_step(step: int) -> None:
            trained_steps.append(step)
            if step == 12:  # the cancel comes in while step 12 runs
                at_step_12.set()
                for _ in range(500):
                    if reporter.should_stop():
                        return
                    threading.Event().wait(0.01)

        callback = ProgressCallback(reporter, checkpoint_every_s=3600)
        trainer = LoopTrainer(req, callback, steps=50, during_step=during_step)
        common.run_trainer(trainer, req, callback)
        raise AssertionError("training was not stopped")

    store, sink = Store(), Sink()
    toolkit = Toolkit(
        train=train,
        publish=never_published,
        checkpoints=lambda spec: store,
        data=OneFile(),
        in_thread=run_in_thread,
        watch_checkpoints=CheckpointSync,
    )
    settings = JobSettings(worker_id="w-1", work_dir=tmp_path, progress_interval=0.05, stop_grace=5)
    job = JobRun(spec, settings=settings, toolkit=toolkit, sink=sink, display=Screen())
    attempt = asyncio.create_task(job.run())
    assert await asyncio.to_thread(at_step_12.wait, 10)
    job.on_cancel(JobCancelRequested(job_id=spec.job_id, attempt=1, reason=CancelReason.USER))
    outcome = await asyncio.wait_for(attempt, 10)

    assert outcome is Outcome.CANCELLED
    assert trained_steps == list(range(1, 13)), "training went on past the step it was in"
    # The stop's checkpoint (written at the step boundary) went to the store for a next attempt.
    assert store.saved == ["checkpoint-12"]
    # A cancelled attempt's job is no longer its own: no failure, no model is reported.
    assert not [p for p in sink.sent if isinstance(p, JobFailed | ModelPushed)]
