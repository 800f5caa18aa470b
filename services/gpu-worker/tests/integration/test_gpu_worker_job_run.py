"""One attempt (JobRun) against a real HTTP data server, with a fake trainer and the reports
captured: how each way out of an attempt is reported."""

import asyncio
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gpu_worker_harness import QuietDisplay
from gpu_worker_testing import (
    BAD_CSV,
    GOOD_CSV,
    DataServer,
    FakePublisher,
    FakeTrainer,
    sha256,
)
from messaging_testing import eventually

from contracts.enums import CancelReason, FailureClass, JobType, ModelStore
from contracts.events import JobCancelRequested, JobFailed, JobProgress, ModelPushed
from contracts.rpc import DataTicket, JobSpec
from contracts.store import owner_key
from gpu_worker.adapters.publish import LocalCheckpointStore
from gpu_worker.domain.errors import InfraError
from gpu_worker.domain.outcome import Outcome
from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult
from gpu_worker.entrypoints.toolkit import build_toolkit
from gpu_worker.service_layer.attempt import JobRun, JobSettings

pytestmark = pytest.mark.integration


class ListSink:
    def __init__(self) -> None:
        self.sent: list[JobProgress | JobFailed | ModelPushed] = []

    def send(self, payload: JobProgress | JobFailed | ModelPushed) -> None:
        self.sent.append(payload)


def make_spec(server: DataServer, content: bytes | None, **ticket: Any) -> JobSpec:
    dataset_id = str(uuid.uuid4())
    if content is not None:
        server.files[dataset_id] = content
    url = f"{server.base_url}/api/finetune/datasets/{dataset_id}/download?ticket=t"
    return JobSpec(
        job_id=uuid.uuid4(),
        attempt=1,
        claim_secret="the-claim-secret",
        job_type=JobType.EMBEDDING,
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        output_model="alice/model",
        hyperparameters={},
        data=DataTicket(url=url, **ticket),
        lease_seconds=30,
        lease_expires_at=datetime.now(UTC) + timedelta(seconds=30),
    )


def make_run(
    spec: JobSpec,
    trainer: Any,
    tmp_path: Path,
    *,
    stop_grace: float = 30,
    sync_interval: float = 30,
    publisher: FakePublisher | None = None,
) -> tuple[JobRun, ListSink]:
    sink = ListSink()
    run = JobRun(
        spec,
        settings=JobSettings(
            worker_id="w1",
            work_dir=tmp_path / "work",
            progress_interval=0.05,
            stop_grace=stop_grace,
            checkpoint_sync_interval=sync_interval,
        ),
        toolkit=build_toolkit(
            trainer,
            publisher or FakePublisher(tmp_path / "store"),
            lambda spec: LocalCheckpointStore(tmp_path / "checkpoints"),
        ),
        sink=sink,
        display=QuietDisplay(),
    )
    return run, sink


async def test_a_completed_attempt_ends_with_model_pushed(
    data_server: DataServer, tmp_path: Path
) -> None:
    spec = make_spec(data_server, GOOD_CSV, sha256=sha256(GOOD_CSV), size_bytes=len(GOOD_CSV))
    run, sink = make_run(spec, FakeTrainer(steps=5), tmp_path)

    assert await run.run() is Outcome.COMPLETED

    final = sink.sent[-1]
    assert isinstance(final, ModelPushed)
    assert final.claim_secret == "the-claim-secret"
    assert final.store is ModelStore.LOCAL
    assert final.uri == f"local://alice/model@{final.revision}"  # no path of this machine
    assert final.created_repo is False
    assert final.data_stats["rows"] == 20
    progress = [p for p in sink.sent if isinstance(p, JobProgress)]
    assert all(p.claim_secret == "the-claim-secret" for p in progress)
    assert progress[-1].phase == "uploading"
    assert not run.work_dir.exists()  # scratch space is cleaned up


async def test_the_push_gets_the_claim_and_says_whether_it_created_the_repo(
    data_server: DataServer, tmp_path: Path
) -> None:
    spec = make_spec(data_server, GOOD_CSV).model_copy(
        update={"hub_token": "hf_the_owners_token", "owner_key": owner_key("alice")}
    )
    publisher = FakePublisher(tmp_path / "store", created_repo=True)
    run, sink = make_run(spec, FakeTrainer(steps=2), tmp_path, publisher=publisher)

    assert await run.run() is Outcome.COMPLETED

    [given] = publisher.specs
    assert given.hub_token == "hf_the_owners_token"
    final = sink.sent[-1]
    assert isinstance(final, ModelPushed)
    assert final.created_repo is True
    assert (tmp_path / "store" / owner_key("alice") / "alice" / "model" / final.revision).is_dir()
    assert "hf_the_owners_token" not in repr(spec)


async def test_a_missing_dataset_is_a_user_error(data_server: DataServer, tmp_path: Path) -> None:
    run, sink = make_run(make_spec(data_server, None), FakeTrainer(), tmp_path)

    assert await run.run() is Outcome.FAILED

    final = sink.sent[-1]
    assert isinstance(final, JobFailed)
    assert final.failure_class is FailureClass.USER_ERROR
    assert not final.retryable
    assert "404" in final.error


@pytest.mark.parametrize(
    ("ticket", "words"),
    [({"sha256": "ab" * 32}, "sha256"), ({"size_bytes": 3}, "bytes")],
)
async def test_a_download_unlike_its_ticket_is_a_retryable_failure(
    data_server: DataServer, tmp_path: Path, ticket: dict[str, Any], words: str
) -> None:
    trainer = FakeTrainer()
    run, sink = make_run(make_spec(data_server, GOOD_CSV, **ticket), trainer, tmp_path)

    assert await run.run() is Outcome.RETRY

    final = sink.sent[-1]
    assert isinstance(final, JobFailed)
    assert final.failure_class is FailureClass.INFRA_ERROR
    assert final.retryable
    assert words in final.error
    assert trainer.requests == []


async def test_bad_rows_are_a_user_error(data_server: DataServer, tmp_path: Path) -> None:
    run, sink = make_run(make_spec(data_server, BAD_CSV), FakeTrainer(), tmp_path)

    assert await run.run() is Outcome.FAILED
    final = sink.sent[-1]
    assert isinstance(final, JobFailed)
    assert final.failure_class is FailureClass.USER_ERROR
    assert "text" in final.error


def crashing(exc: Exception) -> Any:
    def train(req: TrainRequest, reporter: Reporter) -> TrainResult:
        raise exc

    return train


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (InfraError("CUDA out of memory"), "out of memory"),
        (RuntimeError("something broke"), "RuntimeError"),
    ],
)
async def test_infra_errors_and_crashes_are_retryable(
    data_server: DataServer, tmp_path: Path, exc: Exception, words: str
) -> None:
    run, sink = make_run(make_spec(data_server, GOOD_CSV), crashing(exc), tmp_path)

    assert await run.run() is Outcome.RETRY
    final = sink.sent[-1]
    assert isinstance(final, JobFailed)
    assert final.failure_class is FailureClass.INFRA_ERROR
    assert final.retryable
    assert words in final.error


async def wait_holding(trainer: FakeTrainer) -> None:
    assert await asyncio.to_thread(trainer.holding.wait, 30)


async def test_shutdown_checkpoints_and_hands_the_job_back(
    data_server: DataServer, tmp_path: Path
) -> None:
    trainer = FakeTrainer(steps=10, hold_at=4)
    run, sink = make_run(make_spec(data_server, GOOD_CSV), trainer, tmp_path)
    task = asyncio.create_task(run.run())
    await wait_holding(trainer)

    run.shutdown()

    assert await asyncio.wait_for(task, 30) is Outcome.HANDED_BACK
    final = sink.sent[-1]
    assert isinstance(final, JobFailed)
    assert final.retryable
    assert "SIGTERM" in final.error
    assert "checkpoint" in final.error
    saved = LocalCheckpointStore(tmp_path / "checkpoints").fetch_latest(
        str(run.spec.job_id), tmp_path / "fetched"
    )
    assert saved is not None
    assert saved.name == "checkpoint-3"


async def test_shutdown_hands_back_even_when_the_trainer_does_not_stop(
    data_server: DataServer, tmp_path: Path
) -> None:
    stuck = threading.Event()
    entered = threading.Event()

    def deaf(req: TrainRequest, reporter: Reporter) -> TrainResult:
        entered.set()
        stuck.wait(60)
        raise AssertionError("released at teardown")

    run, sink = make_run(make_spec(data_server, GOOD_CSV), deaf, tmp_path, stop_grace=0.3)
    task = asyncio.create_task(run.run())
    assert await asyncio.to_thread(entered.wait, 30)
    try:
        run.shutdown()
        assert await asyncio.wait_for(task, 30) is Outcome.HANDED_BACK
        final = sink.sent[-1]
        assert isinstance(final, JobFailed)
        assert final.retryable
    finally:
        stuck.set()


async def test_a_cancel_stops_the_trainer_and_reports_nothing_more(
    data_server: DataServer, tmp_path: Path
) -> None:
    trainer = FakeTrainer(steps=10, hold_at=4)
    run, sink = make_run(make_spec(data_server, GOOD_CSV), trainer, tmp_path)
    task = asyncio.create_task(run.run())
    await wait_holding(trainer)

    run.on_cancel(JobCancelRequested(job_id=run.spec.job_id, attempt=1, reason=CancelReason.USER))

    assert await asyncio.wait_for(task, 30) is Outcome.CANCELLED
    assert trainer.stopped_at == [3]
    assert all(isinstance(p, JobProgress) for p in sink.sent)


async def test_a_cancel_while_downloading_stops_before_training(
    tmp_path: Path,
) -> None:
    # A URL that never answers: the download hangs until the cancel.
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        with DataServer().running() as server:
            server.base_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        trainer = FakeTrainer()
        run, _ = make_run(make_spec(server, GOOD_CSV), trainer, tmp_path)
        task = asyncio.create_task(run.run())
        await asyncio.sleep(0)
        run.on_cancel(
            JobCancelRequested(job_id=run.spec.job_id, attempt=None, reason=CancelReason.USER)
        )
        assert await asyncio.wait_for(task, 30) is Outcome.CANCELLED
        assert trainer.requests == []
    finally:
        listener.close()


async def test_checkpoints_are_saved_while_training_and_discarded_once_pushed(
    data_server: DataServer, tmp_path: Path
) -> None:
    trainer = FakeTrainer(steps=8, hold_at=6, checkpoint_every=2)
    run, _ = make_run(make_spec(data_server, GOOD_CSV), trainer, tmp_path, sync_interval=0.05)
    store = tmp_path / "checkpoints" / str(run.spec.job_id)
    task = asyncio.create_task(run.run())
    await wait_holding(trainer)

    async def synced() -> bool:
        return (store / "checkpoint-4").is_dir()

    # A worker killed now (no SIGTERM) leaves checkpoint-4 for the next attempt.
    await eventually(synced, timeout=30)
    trainer.release.set()
    assert await asyncio.wait_for(task, 30) is Outcome.COMPLETED
    assert not store.exists()


async def test_an_attempt_resumes_from_the_stored_checkpoint(
    data_server: DataServer, tmp_path: Path
) -> None:
    spec = make_spec(data_server, GOOD_CSV)
    folder = tmp_path / "earlier" / "checkpoint-4"  # what an earlier attempt left
    folder.mkdir(parents=True)
    (folder / "step").write_text("4")
    (folder / "trainer_state.json").write_text("{}")
    LocalCheckpointStore(tmp_path / "checkpoints").save(str(spec.job_id), folder)
    trainer = FakeTrainer(steps=6)
    run, sink = make_run(spec, trainer, tmp_path)

    assert await run.run() is Outcome.COMPLETED

    [request] = trainer.requests
    assert request.resume_from is not None
    assert request.resume_from.name == "checkpoint-4"
    final = sink.sent[-1]
    assert isinstance(final, ModelPushed)
    assert final.data_stats["resumed_from_step"] == 4
