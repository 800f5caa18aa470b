"""The worker runtime end to end with a fake trainer, against the real broker and job-api:
claim, download, heartbeat, progress, completion, cancel, SIGTERM hand-back and resume, a dropped
broker link, bad data, a corrupted download, a push that fails then succeeds."""

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from gpu_worker_harness import AMQP_URL, Platform, QuietDisplay, rabbitmqctl
from gpu_worker_testing import (
    BAD_CSV,
    GOOD_CSV,
    FakePublisher,
    FakeTrainer,
)
from job_api_testing import enroll_over_http
from messaging_testing import eventually

from contracts.enums import JobType
from contracts.store import owner_key
from gpu_worker.adapters.publish import LocalCheckpointStore
from gpu_worker.config import WorkerSettings
from gpu_worker.domain.outcome import Outcome
from gpu_worker.entrypoints.supervisor import serve
from gpu_worker.entrypoints.toolkit import build_toolkit

pytestmark = pytest.mark.integration


def running(job: dict[str, Any]) -> bool:
    return job["status"] == "running"


async def wait_holding(trainer: FakeTrainer, timeout: float = 30) -> None:
    assert await asyncio.to_thread(trainer.holding.wait, timeout), "the trainer never got there"


async def test_a_job_trains_to_completed_with_progress_reaching_job_api(
    platform: Platform, start_worker: Any
) -> None:
    worker = await start_worker(FakeTrainer(steps=8))
    job_id = await platform.submit(GOOD_CSV)

    job = await platform.until(job_id, lambda j: j["status"] == "completed")

    assert job["attempt"] == 1
    assert job["progress"] == 100
    # In the owner's folder of the store (the claim names it).
    owner = owner_key("alice")
    published = list((worker.publisher.store_dir / owner / "alice" / "custom-embedding").iterdir())
    assert [p.name for p in published] == [job["output_revision"]]
    assert (published[0] / "weights.txt").read_text() == "20 rows, 8 steps"
    assert job["metrics"]["loss"] == pytest.approx(1 / 8)
    [request] = worker.trainer.requests
    assert request.attempt == 1
    assert request.resume_from is None
    assert request.data_format == "csv"
    assert request.job_type is JobType.EMBEDDING
    # The data came through the claim's URL, once, its ticket in the Authorization header.
    assert len(platform.data.requests) == 1
    assert "ticket=" not in platform.data.requests[0]
    assert platform.data.tickets == 1
    progress = [e["data"] for e in await platform.events(job_id) if e["kind"] == "progress"]
    phases = [p.get("phase") for p in progress]
    assert "downloading" in phases
    assert "training" in phases
    steps = [p["step"] for p in progress if p.get("step") is not None]
    assert steps == sorted(steps)
    assert steps[-1] == 8
    assert any("step 8" in line for p in progress for line in p.get("log_lines", []))
    # The worker is free again: a second job runs too.
    second = await platform.submit(GOOD_CSV)
    await platform.until(second, lambda j: j["status"] == "completed")
    assert worker.worker.outcomes == [Outcome.COMPLETED, Outcome.COMPLETED]


@pytest.mark.parametrize("job_api", [{"lease_seconds": 1.5}], indirect=True)
async def test_heartbeats_keep_a_silent_job_past_its_lease(
    platform: Platform, start_worker: Any
) -> None:
    trainer = FakeTrainer(steps=4, hold_at=3)
    await start_worker(trainer, progress_interval=5)
    job_id = await platform.submit(GOOD_CSV)
    await wait_holding(trainer)

    async def heartbeats_while_silent() -> bool:
        silent = [
            e
            for e in await platform.events(job_id)
            if e["kind"] == "progress" and e["data"].get("step") == 2
        ]
        return len(silent) >= 6  # two seconds and more of silence: longer than the lease

    await eventually(heartbeats_while_silent, timeout=30, interval=0.2)
    job = await platform.job(job_id)
    assert job["status"] == "running"
    assert job["attempt"] == 1
    trainer.release.set()
    job = await platform.until(job_id, lambda j: j["status"] == "completed")
    assert job["attempt"] == 1


async def test_cancel_stops_training_within_one_step(platform: Platform, start_worker: Any) -> None:
    trainer = FakeTrainer(steps=10, hold_at=5)
    worker = await start_worker(trainer)
    job_id = await platform.submit(GOOD_CSV)
    await wait_holding(trainer)
    await platform.until(job_id, lambda j: (j["step"] or 0) >= 4)

    await platform.cancel(job_id)

    async def stopped() -> bool:
        return bool(trainer.stopped_at) and worker.worker.outcomes == [Outcome.CANCELLED]

    await eventually(stopped, timeout=30)
    assert trainer.stopped_at == [4]
    job = await platform.job(job_id)
    assert job["status"] == "cancelled"
    # And it takes the next job.
    trainer.hold_at = None
    second = await platform.submit(GOOD_CSV)
    await platform.until(second, lambda j: j["status"] == "completed")


async def test_sigterm_hands_the_job_back_and_a_second_worker_resumes_it(
    platform: Platform, start_worker: Any, prefix: str, tmp_path: Path
) -> None:
    trainer = FakeTrainer(steps=10, hold_at=5)
    settings = WorkerSettings(
        amqp_url=AMQP_URL,
        broker_prefix=prefix,
        work_dir=tmp_path / "first",
        job_types=[JobType.EMBEDDING],
        progress_interval=0.2,
    )
    toolkit = build_toolkit(
        trainer,
        FakePublisher(tmp_path / "models"),
        lambda spec: LocalCheckpointStore(tmp_path / "checkpoints"),
    )
    enrolled = await enroll_over_http(platform.client, f"sigterm-{uuid.uuid4().hex[:6]}")
    first = asyncio.create_task(
        serve(
            settings,
            [JobType.EMBEDDING],
            toolkit,
            QuietDisplay(),
            token=enrolled["token"],
            api_url=str(platform.client.base_url),
        )
    )
    job_id = await platform.submit(GOOD_CSV)
    await wait_holding(trainer)

    os.kill(os.getpid(), signal.SIGTERM)  # serve() handles it: the worker, not pytest, gets it

    async with asyncio.timeout(30):
        assert await first == 0
    assert trainer.stopped_at == [4]
    job = await platform.until(job_id, lambda j: j["status"] == "pending")
    assert "SIGTERM" in (job["error"] or "")

    second = await start_worker(FakeTrainer(steps=10))
    job = await platform.until(job_id, lambda j: j["status"] == "completed")
    assert job["attempt"] == 2
    [request] = second.trainer.requests
    assert request.attempt == 2
    assert request.resume_from is not None
    assert request.resume_from.name == "checkpoint-4"


async def _close_worker_connection(worker_id: str) -> int:
    listing = await rabbitmqctl(
        "list_connections", "--no-table-headers", "-q", "pid", "client_properties"
    )
    closed = 0
    for line in listing.splitlines():
        if f"gpu-worker/{worker_id}" in line:
            await rabbitmqctl("close_connection", line.split()[0], "test: link lost")
            closed += 1
    return closed


async def test_a_dropped_broker_connection_mid_job_still_completes(
    platform: Platform, start_worker: Any
) -> None:
    trainer = FakeTrainer(steps=6, hold_at=3)
    worker = await start_worker(trainer)
    job_id = await platform.submit(GOOD_CSV)
    await wait_holding(trainer)

    assert await _close_worker_connection(worker.worker.link.worker_id) == 1
    trainer.release.set()

    job = await platform.until(job_id, lambda j: j["status"] == "completed", timeout=60)
    assert job["attempt"] == 1
    assert worker.worker.outcomes == [Outcome.COMPLETED]


async def test_bad_data_is_a_user_error_with_the_reason_on_the_job(
    platform: Platform, start_worker: Any
) -> None:
    await start_worker()
    job_id = await platform.submit(BAD_CSV)

    job = await platform.until(job_id, lambda j: j["status"] == "failed")

    assert job["failure_class"] == "user_error"
    assert "text" in job["error"]
    assert job["attempt"] == 1


@pytest.mark.parametrize("job_api", [{"max_attempts": 1}], indirect=True)
async def test_a_download_that_does_not_match_its_sha256_fails(
    platform: Platform, start_worker: Any
) -> None:
    worker = await start_worker()
    job_id = await platform.submit(GOOD_CSV, claimed_sha256="0" * 64)

    job = await platform.until(job_id, lambda j: j["status"] == "failed")

    assert job["failure_class"] == "infra_error"
    assert "sha256" in job["error"]
    assert worker.trainer.requests == []


async def test_a_failed_push_is_retried_without_retraining(
    platform: Platform, start_worker: Any, tmp_path: Path
) -> None:
    publisher = FakePublisher(tmp_path / "store", fail_times=1)
    worker = await start_worker(publisher=publisher)
    job_id = await platform.submit(GOOD_CSV)

    await platform.until(job_id, lambda j: j["status"] == "completed")

    assert publisher.calls == 2
    assert len(worker.trainer.requests) == 1


@pytest.mark.timeout(300)
async def test_data_service_down_for_30_seconds_mid_download_costs_the_job_nothing(
    platform: Platform, start_worker: Any
) -> None:
    """The download is cut after 1 MiB and the data service answers nothing for 30 s: the
    worker retries with back-off (its heartbeat keeps the lease), then resumes where the bytes
    stopped (a Range request) and the job completes on its first attempt."""
    rows = GOOD_CSV + b"".join(b"extra row %d,more text %d\n" % (i, i) for i in range(120_000))
    platform.data.cut_after = 1 << 20
    platform.data.outage_seconds = 30
    worker = await start_worker(FakeTrainer(steps=4))
    job_id = await platform.submit(rows)

    job = await platform.until(job_id, lambda j: j["status"] != "pending", timeout=60)
    job = await platform.until(job_id, lambda j: j["status"] == "completed", timeout=180)

    assert job["attempt"] == 1
    assert platform.data.refused > 0, "the worker tried during the outage"
    assert platform.data.ranges == [f"bytes={1 << 20}-"]
    assert len(worker.trainer.requests) == 1
    lines = [
        line
        for e in await platform.events(job_id)
        if e["kind"] == "progress"
        for line in e["data"].get("log_lines", [])
    ]
    assert any("trying again" in line for line in lines), lines
    # The whole file arrived, checked against the dataset's size and sha256.
    assert any(line.startswith(f"data: {len(rows)} bytes") for line in lines), lines


async def test_a_cancel_during_the_download_stops_it(platform: Platform, start_worker: Any) -> None:
    """The download stalls mid-body (a slow data server): a cancel stops the worker there, and
    the worker is free for the next job at once."""
    platform.data.stall_after = 1000
    worker = await start_worker(FakeTrainer(steps=4))
    job_id = await platform.submit(GOOD_CSV * 100)
    try:
        assert await asyncio.to_thread(platform.data.stalled.wait, 60)
        await platform.cancel(job_id)

        async def stopped() -> bool:
            return worker.worker.outcomes == [Outcome.CANCELLED]

        await eventually(stopped, timeout=30)
        assert worker.trainer.requests == [], "it never trained"
    finally:
        platform.data.stall.set()
    platform.data.stall_after = None
    second = await platform.submit(GOOD_CSV)
    await platform.until(second, lambda j: j["status"] == "completed")


async def test_a_cancel_during_the_push_is_not_waited_for_and_registers_nothing(
    platform: Platform, start_worker: Any, tmp_path: Path
) -> None:
    """A push that hangs (a slow Hub) is not waited for after a cancel: the worker reports
    nothing of the job (no model.pushed, so no model version) and takes the next job."""
    publisher = FakePublisher(tmp_path / "models", hold=True)
    worker = await start_worker(FakeTrainer(steps=3), publisher=publisher)
    job_id = await platform.submit(GOOD_CSV)
    try:
        assert await asyncio.to_thread(publisher.pushing.wait, 60)
        await platform.cancel(job_id)

        async def stopped() -> bool:
            return worker.worker.outcomes == [Outcome.CANCELLED]

        await eventually(stopped, timeout=30)
        assert not publisher.release.is_set(), "the hanging push was not waited for"
    finally:
        publisher.release.set()
    job = await platform.job(job_id)
    assert (job["status"], job["output_revision"]) == ("cancelled", None)
    publisher.hold = False
    second = await platform.submit(GOOD_CSV)
    await platform.until(second, lambda j: j["status"] == "completed")
