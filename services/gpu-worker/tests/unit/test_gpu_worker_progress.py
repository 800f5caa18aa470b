"""The progress rules of an attempt (gpu_worker.domain.progress): what a report carries and when
the next one is due, without threads or clocks."""

import math

import pytest

from contracts.enums import JobPhase
from contracts.events import MAX_LOG_LINES
from gpu_worker.domain.progress import ProgressBook, heartbeat_for


def book(interval: float = 2.0, heartbeat: float = 10.0) -> ProgressBook:
    return ProgressBook(interval=interval, heartbeat=heartbeat)


def test_progress_never_goes_backwards_and_stays_within_0_and_100() -> None:
    progress = book()
    progress.record(progress=40.0)
    progress.record(progress=25.0)
    assert progress.state.progress == 40.0
    progress.record(progress=250.0)
    assert progress.state.progress == 100.0
    low = book()
    low.record(progress=-5.0)
    assert low.state.progress == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_numbers_that_are_not_finite_are_dropped_not_sent(bad: float) -> None:
    progress = book()
    progress.record(progress=10.0, loss=0.5, eta_seconds=30.0, metrics={"accuracy": 0.8})
    progress.record(progress=bad, loss=bad, eta_seconds=bad, metrics={"accuracy": bad, "f1": 0.7})
    state = progress.state
    assert (state.progress, state.loss, state.eta_seconds) == (10.0, 0.5, 30.0)
    assert state.metrics == {"accuracy": 0.8, "f1": 0.7}


def test_fields_an_update_leaves_out_keep_their_last_value() -> None:
    progress = book()
    progress.record(progress=5.0, step=3, total_steps=100, epoch=0.1, loss=2.0)
    progress.record(progress=6.0)
    state = progress.state
    assert (state.step, state.total_steps, state.epoch, state.loss) == (3, 100, 0.1, 2.0)
    progress.record(progress=7.0, eta_seconds=-3.0)
    assert progress.state.eta_seconds == 0.0


def test_a_report_carries_the_log_lines_since_the_last_one_at_most_the_contracts_limit() -> None:
    progress = book()
    progress.record(progress=1.0, log_lines=[f"line {i}" for i in range(MAX_LOG_LINES + 7)])
    state, lines = progress.take()
    assert len(lines) == MAX_LOG_LINES
    assert lines[-1] == f"line {MAX_LOG_LINES + 6}"
    assert progress.take()[1] == []
    # What was taken does not change with later updates.
    progress.record(progress=50.0, metrics={"loss": 1.0})
    assert (state.progress, state.metrics) == (1.0, {})


def test_the_first_report_is_due_at_once() -> None:
    assert book().due_in(since_last=math.inf) <= 0


def test_news_after_a_report_is_due_within_the_interval_and_wakes_the_sender_once() -> None:
    progress = book(interval=2.0, heartbeat=10.0)
    progress.record(progress=0.0, phase=JobPhase.TRAINING)
    progress.take()
    assert progress.due_in(since_last=0.0) == 10.0, "nothing new: the heartbeat"
    assert progress.record(progress=1.0) is True, "the sender slept for a heartbeat: wake it"
    assert progress.record(progress=2.0) is False, "already due within the interval"
    assert progress.due_in(since_last=0.5) == 1.5


def test_a_phase_change_is_due_at_once() -> None:
    progress = book()
    progress.record(progress=0.0, phase=JobPhase.DOWNLOADING)
    progress.take()
    progress.record(progress=1.0, phase=JobPhase.DOWNLOADING)
    assert progress.record(progress=0.0, phase=JobPhase.TRAINING) is True
    assert progress.due_in(since_last=0.0) == 0.0
    progress.take()
    assert progress.due_in(since_last=0.0) == 10.0


def test_the_interval_is_never_longer_than_the_heartbeat() -> None:
    assert book(interval=30.0, heartbeat=5.0).interval == 5.0


@pytest.mark.parametrize(("lease", "beat"), [(90.0, 30.0), (30.0, 10.0), (0.9, 0.5)])
def test_at_least_three_heartbeats_per_lease(lease: float, beat: float) -> None:
    assert heartbeat_for(lease) == beat
