import asyncio
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from messaging_testing import eventually

from contracts.enums import JobPhase
from contracts.events import JobProgress
from gpu_worker.service_layer.reporter import JobReporter


def make(sent: list[JobProgress], *, interval: float = 0.05, heartbeat: float = 0.2) -> JobReporter:
    return JobReporter(
        job_id=uuid.uuid4(),
        attempt=1,
        worker_id="w1",
        claim_secret="s3cret",
        send=sent.append,
        interval=interval,
        heartbeat=heartbeat,
    )


async def wait_for(check: Callable[[], bool], timeout: float = 5) -> None:
    async def done() -> bool:
        return check()

    await eventually(done, timeout=timeout)


async def test_throttles_many_calls_into_few_reports_and_keeps_the_latest() -> None:
    sent: list[JobProgress] = []
    reporter = make(sent, interval=0.1, heartbeat=10)
    task = asyncio.create_task(reporter.run())
    await wait_for(lambda: len(sent) == 1)

    def train() -> None:
        for step in range(1, 1001):
            reporter.progress(progress=step / 10, step=step, total_steps=1000, loss=1 / step)

    thread = threading.Thread(target=train)
    thread.start()
    thread.join()
    await wait_for(lambda: sent[-1].step == 1000)
    task.cancel()
    assert len(sent) < 50
    last = sent[-1]
    assert last.progress == 100
    assert last.total_steps == 1000
    assert last.claim_secret == "s3cret"
    assert [p.progress for p in sent] == sorted(p.progress for p in sent)


async def test_steady_training_is_reported_every_interval_not_every_heartbeat() -> None:
    # A report went out and the state was clean, so the loop slept for the heartbeat; the first
    # update after that must bring the next report within `interval`, not after the heartbeat.
    sent: list[JobProgress] = []
    reporter = make(sent, interval=0.05, heartbeat=30)
    reporter.progress(progress=0, phase=JobPhase.TRAINING, step=0)
    task = asyncio.create_task(reporter.run())
    await wait_for(lambda: len(sent) == 1)

    def train() -> None:
        for step in range(1, 41):
            time.sleep(0.02)
            reporter.progress(progress=step * 2, step=step)

    started = time.monotonic()
    await asyncio.to_thread(train)
    await wait_for(lambda: sent[-1].step == 40, timeout=1)
    elapsed = time.monotonic() - started
    task.cancel()
    steps = [p.step for p in sent]
    assert len(steps) >= 6, steps
    # Still throttled: at most one report per interval (plus the first and the last).
    assert len(sent) <= elapsed / 0.05 + 3, (len(sent), elapsed)


async def test_heartbeat_repeats_the_state_when_training_is_silent() -> None:
    sent: list[JobProgress] = []
    reporter = make(sent, heartbeat=0.05)
    reporter.progress(progress=10)
    task = asyncio.create_task(reporter.run())
    await wait_for(lambda: len(sent) >= 4)
    task.cancel()
    assert {p.progress for p in sent} == {10}


async def test_progress_never_goes_backwards_and_bad_numbers_are_dropped() -> None:
    sent: list[JobProgress] = []
    reporter = make(sent)
    reporter.progress(progress=50, loss=0.5, metrics={"acc": 0.9, "bad": float("nan")})
    reporter.progress(progress=20, loss=float("inf"), eta_seconds=-3)
    reporter.publish_now()
    assert sent[-1].progress == 50
    assert sent[-1].loss == 0.5
    assert sent[-1].metrics == {"acc": 0.9}
    assert sent[-1].eta_seconds == 0


async def test_a_phase_change_is_sent_at_once_with_the_log_lines() -> None:
    sent: list[JobProgress] = []
    reporter = make(sent, interval=30, heartbeat=60)
    task = asyncio.create_task(reporter.run())
    await wait_for(lambda: len(sent) == 1)
    threading.Thread(
        target=lambda: reporter.progress(progress=0, phase=JobPhase.EVALUATING, log_lines=["eval"])
    ).start()
    await wait_for(lambda: len(sent) == 2)
    task.cancel()
    assert sent[1].phase is JobPhase.EVALUATING
    assert sent[1].log_lines == ["eval"]


def test_should_stop_after_request() -> None:
    reporter = make([])
    assert not reporter.should_stop()
    reporter.request_stop("cancelled")
    reporter.request_stop("shutdown")
    assert reporter.should_stop()
    assert reporter.stop_reason == "cancelled"


@pytest.mark.parametrize("lines", [100])
def test_log_lines_are_bounded(lines: int) -> None:
    sent: list[JobProgress] = []
    reporter = make(sent)
    reporter.progress(progress=1, log_lines=[f"line {i}" for i in range(lines)])
    reporter.publish_now()
    assert len(sent[-1].log_lines) == 50
    assert sent[-1].log_lines[-1] == f"line {lines - 1}"
