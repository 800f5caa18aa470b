"""The Job aggregate on its own: the state machine, attempt fencing, progress and leases."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.enums import FailureClass, GPUProvider, JobPhase, JobStatus, JobType, ModelStore
from job_api.domain.errors import AlreadyClaimed, IllegalTransition, StaleAttempt
from job_api.domain.job import (
    ALLOWED,
    Credential,
    Job,
    Progress,
    PushedModel,
    hash_claim_secret,
)

S = JobStatus
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=90)
LATER = NOW + timedelta(seconds=30)
# The HTTP worker that claims in running_job(), holding attempt 1 (with and without naming it).
W1 = Credential("w1", 1)
W1_ANY = Credential("w1", None)


def model(revision: str = "abc", metrics: dict[str, float] | None = None) -> PushedModel:
    return PushedModel(
        repo_id="alice/custom-embedding",
        revision=revision,
        store=ModelStore.LOCAL,
        uri=f"file:///models/alice/custom-embedding/{revision}",
        metrics=metrics or {},
    )


def make_job(status: JobStatus = S.PENDING, **overrides: Any) -> Job:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "user_id": "alice",
        "job_type": JobType.EMBEDDING,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "training_data_url": "https://data.example.com/train.csv",
        "output_model": "alice/custom-embedding",
        "gpu_provider": GPUProvider.LOCAL,
        "hyperparameters": {},
        "created_at": NOW,
        "updated_at": NOW,
        "status": status,
    }
    if status is S.RUNNING:
        values.update(
            attempt=1,
            worker_id="w1",
            claim_id=uuid.uuid4(),
            lease_expires_at=NOW + LEASE,
            phase=JobPhase.TRAINING,
            started_at=NOW,
        )
    values.update(overrides)
    return Job(**values)


def running_job(**overrides: Any) -> Job:
    job = make_job()
    for key, value in overrides.items():
        setattr(job, key, value)
    job.claim(worker_id="w1", claim_id=uuid.uuid4(), now=NOW, lease=LEASE)
    return job


# The documented lifecycle (DESIGN.md), written out here rather than read from ALLOWED: a change
# to the table in the code must show up as a failing test.
ALLOWED_PAIRS = [
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.CANCELLED),
    (S.PENDING, S.FAILED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.PENDING),
]
ILLEGAL_PAIRS = [
    (S.PENDING, S.PENDING),
    (S.PENDING, S.COMPLETED),
    (S.RUNNING, S.RUNNING),
    *((S.COMPLETED, t) for t in S),
    *((S.FAILED, t) for t in S),
    *((S.CANCELLED, t) for t in S),
]


def test_the_table_is_the_documented_lifecycle() -> None:
    assert len(ALLOWED_PAIRS) + len(ILLEGAL_PAIRS) == len(S) ** 2
    assert {(c, t) for c in S for t in ALLOWED[c]} == set(ALLOWED_PAIRS)


@pytest.mark.parametrize(("current", "target"), ALLOWED_PAIRS)
def test_allowed_transition_moves_and_reports_itself(current: JobStatus, target: JobStatus) -> None:
    job = make_job(current)

    transition = job._move(target, LATER, "why")

    assert job.status is target
    assert job.updated_at == LATER
    assert (transition.from_status, transition.to_status) == (current, target)
    assert transition.attempt == job.attempt
    assert transition.reason == "why"
    if target.is_terminal:
        assert job.completed_at == LATER
        assert job.lease_expires_at is None
    else:
        assert job.completed_at is None


@pytest.mark.parametrize(("current", "target"), ILLEGAL_PAIRS)
def test_illegal_transition_raises_and_changes_nothing(
    current: JobStatus, target: JobStatus
) -> None:
    job = make_job(current)
    before = (job.status, job.updated_at, job.completed_at)

    with pytest.raises(IllegalTransition) as caught:
        job._move(target, LATER)

    assert (caught.value.current, caught.value.target) == (current, target)
    assert caught.value.code == "illegal_transition"
    assert (job.status, job.updated_at, job.completed_at) == before


def test_claim_increments_attempt_and_takes_a_lease() -> None:
    job = make_job()
    claim_id = uuid.uuid4()

    transition = job.claim(worker_id="w1", claim_id=claim_id, now=NOW, lease=LEASE)

    assert job.status is S.RUNNING
    assert job.attempt == 1
    assert transition.attempt == 1
    assert (transition.from_status, transition.to_status) == (S.PENDING, S.RUNNING)
    assert job.worker_id == "w1"
    assert job.claim_id == claim_id
    assert job.lease_expires_at == NOW + LEASE
    assert job.phase is JobPhase.CLAIMED
    assert job.started_at == NOW


def test_a_second_claim_after_a_requeue_is_the_next_attempt() -> None:
    job = running_job()
    job.expire_lease(now=LATER)
    job.progress = 30

    job.claim(worker_id="w2", claim_id=None, now=LATER, lease=LEASE)

    assert job.attempt == 2
    assert job.worker_id == "w2"
    assert job.progress == 0
    assert job.error is None
    assert job.failure_class is None
    assert job.started_at == NOW  # the first start is kept


@pytest.mark.parametrize("status", [S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED])
def test_only_a_pending_job_can_be_claimed(status: JobStatus) -> None:
    job = make_job(status)
    with pytest.raises(IllegalTransition):
        job.claim(worker_id="w9", claim_id=None, now=LATER, lease=LEASE)
    assert job.worker_id != "w9"


def test_the_holder_is_the_claiming_worker_with_or_without_its_attempt() -> None:
    job = make_job(S.RUNNING, attempt=2)
    job.check_holder(Credential("w1", 2))
    job.check_holder(Credential("w1", None))


@pytest.mark.parametrize("presented", [1, 3])
def test_another_attempt_is_not_the_holder(presented: int) -> None:
    job = make_job(S.RUNNING, attempt=2)
    with pytest.raises(StaleAttempt) as caught:
        job.check_holder(Credential("w1", presented))
    assert (caught.value.current, caught.value.presented) == (2, presented)
    assert str(caught.value) == (
        f"Job {job.id} is held by attempt 2; attempt {presented} no longer holds it."
    )


def test_another_http_worker_is_not_the_holder_even_with_the_right_attempt() -> None:
    job = make_job(S.RUNNING, attempt=2)
    for attempt in (2, None):
        with pytest.raises(StaleAttempt, match=r"held by worker w1 \(attempt 2\), not by w9\."):
            job.check_holder(Credential("w9", attempt))


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED, S.CANCELLED])
def test_an_ended_job_has_no_holder_and_the_message_says_so(status: JobStatus) -> None:
    job = make_job(status, attempt=1, worker_id="w1")
    for who in (Credential("w1", 1), Credential("w1", None)):
        with pytest.raises(StaleAttempt) as caught:
            job.check_holder(who)
        assert str(caught.value) == f"Job {job.id} is {status}; attempt 1 no longer holds it."


def test_a_pending_job_has_no_holder() -> None:
    job = make_job()
    with pytest.raises(StaleAttempt, match="is pending: no attempt holds it"):
        job.check_holder(Credential("w1", None))


def test_a_broker_claim_is_held_by_its_claim_secret_only() -> None:
    job = make_job()
    job.claim(
        worker_id="w1",
        claim_id=uuid.uuid4(),
        now=NOW,
        lease=LEASE,
        secret_hash=hash_claim_secret("right"),
    )
    assert job.claim_secret_hash == hash_claim_secret("right")
    assert "right" not in repr(job)
    job.check_holder(Credential("w1", 1, hash_claim_secret("right")))
    # The worker id proves nothing: any worker credential could claim to be w1.
    with pytest.raises(StaleAttempt, match="claim secret is not the one granted to attempt 1"):
        job.check_holder(Credential("w1", 1, hash_claim_secret("guessed")))
    # Nor can the HTTP path (which has no secret) act on a broker claim.
    with pytest.raises(StaleAttempt, match="claimed over the broker"):
        job.check_holder(Credential("w1", 1))
    job.expire_lease(now=LATER)
    assert job.claim_secret_hash is None


def test_an_http_claim_is_a_compare_and_set() -> None:
    job = make_job()
    transition = job.claim_over_http(worker_id="w1", now=NOW, lease=LEASE)
    assert transition is not None
    assert job.attempt == 1
    # The same worker again (a retried request): no new attempt.
    assert job.claim_over_http(worker_id="w1", now=LATER, lease=LEASE) is None
    assert job.attempt == 1
    with pytest.raises(AlreadyClaimed, match="running attempt 1 for worker w1"):
        job.claim_over_http(worker_id="w2", now=LATER, lease=LEASE)
    assert (job.attempt, job.worker_id) == (1, "w1")


def test_an_http_claim_of_a_broker_claimed_job_is_refused() -> None:
    job = make_job()
    job.claim(worker_id="w1", claim_id=None, now=NOW, lease=LEASE, secret_hash="h")
    with pytest.raises(AlreadyClaimed):
        job.claim_over_http(worker_id="w1", now=LATER, lease=LEASE)


def test_progress_is_recorded_and_renews_the_lease() -> None:
    job = running_job()

    job.record_progress(
        W1,
        Progress(progress=40, step=4, total_steps=10, epoch=0.5, loss=0.7, metrics={"acc": 0.6}),
        now=LATER,
        lease=LEASE,
    )

    assert job.progress == 40
    assert job.phase is JobPhase.TRAINING
    assert (job.step, job.total_steps, job.epoch) == (4, 10, 0.5)
    assert job.metrics == {"acc": 0.6, "loss": 0.7}
    assert job.lease_expires_at == LATER + LEASE


def test_progress_never_goes_backwards_but_the_lease_is_renewed() -> None:
    job = running_job()
    assert job.record_progress(W1, Progress(progress=50, step=5), now=NOW, lease=LEASE)

    taken = job.record_progress(W1_ANY, Progress(progress=49.5, step=4), now=LATER, lease=LEASE)

    assert not taken
    assert (job.progress, job.step) == (50, 5)
    assert job.lease_expires_at == LATER + LEASE


def test_equal_progress_is_not_backwards() -> None:
    job = running_job()
    job.record_progress(W1, Progress(progress=50), now=NOW, lease=LEASE)
    job.record_progress(W1, Progress(progress=50, step=7), now=LATER, lease=LEASE)
    assert job.step == 7


def test_progress_from_a_stale_attempt_is_refused_without_renewing_the_lease() -> None:
    job = make_job(S.RUNNING, attempt=2)
    lease_before = job.lease_expires_at

    with pytest.raises(StaleAttempt):
        job.record_progress(W1, Progress(progress=90), now=LATER, lease=LEASE)

    assert job.progress == 0
    assert job.lease_expires_at == lease_before


def test_complete_sets_progress_100_and_done() -> None:
    job = running_job()
    job.record_progress(W1, Progress(progress=80, loss=0.3), now=NOW, lease=LEASE)

    transition = job.complete(W1, now=LATER, model=model("abc", {"acc": 0.9}))

    assert job.status is S.COMPLETED
    assert transition.reason == "model_completed"
    assert transition.model == model("abc", {"acc": 0.9})
    assert job.progress == 100
    assert job.phase is JobPhase.DONE
    assert job.output_revision == "abc"
    assert job.metrics == {"loss": 0.3, "acc": 0.9}
    assert job.completed_at == LATER
    assert job.lease_expires_at is None


def test_a_stale_attempt_cannot_complete_the_job() -> None:
    job = make_job(S.RUNNING, attempt=2)
    with pytest.raises(StaleAttempt):
        job.complete(W1, now=LATER, model=model())
    assert job.status is S.RUNNING


def test_a_retryable_failure_requeues_while_attempts_remain() -> None:
    job = running_job(max_attempts=2)

    transition = job.fail(
        W1, error="OOM", failure_class=FailureClass.INFRA_ERROR, retryable=True, now=LATER
    )

    assert (transition.from_status, transition.to_status) == (S.RUNNING, S.PENDING)
    assert transition.reason == "retryable_failure"
    assert job.status is S.PENDING
    assert job.phase is JobPhase.QUEUED
    assert job.error == "OOM"
    assert job.failure_class is FailureClass.INFRA_ERROR
    assert job.worker_id is None
    assert job.claim_id is None
    assert job.lease_expires_at is None
    assert job.completed_at is None


def test_a_retryable_failure_fails_the_job_at_max_attempts() -> None:
    job = running_job(max_attempts=2)
    job.fail(W1, error="OOM", failure_class=FailureClass.INFRA_ERROR, retryable=True, now=LATER)
    job.claim(worker_id="w2", claim_id=None, now=LATER, lease=LEASE)

    transition = job.fail(
        Credential("w2", 2),
        error="OOM again",
        failure_class=FailureClass.INFRA_ERROR,
        retryable=True,
        now=LATER,
    )

    assert transition.to_status is S.FAILED
    assert job.status is S.FAILED
    assert job.attempt == 2
    assert job.error == "OOM again"


def test_a_non_retryable_failure_fails_at_once() -> None:
    job = running_job(max_attempts=5)
    job.fail(W1, error="bad csv", failure_class=FailureClass.USER_ERROR, retryable=False, now=LATER)
    assert job.status is S.FAILED
    assert job.failure_class is FailureClass.USER_ERROR
    assert job.completed_at == LATER


def test_a_stale_attempt_cannot_fail_the_job() -> None:
    job = make_job(S.RUNNING, attempt=2)
    with pytest.raises(StaleAttempt):
        job.fail(W1, error="x", failure_class=FailureClass.USER_ERROR, retryable=False, now=LATER)
    assert job.status is S.RUNNING


def test_fail_pending_fails_only_a_pending_job() -> None:
    job = make_job()
    job.fail_pending(error="nope", failure_class=FailureClass.USER_ERROR, now=LATER)
    assert job.status is S.FAILED
    assert job.error == "nope"

    running = make_job(S.RUNNING)
    with pytest.raises(IllegalTransition):
        running.fail_pending(error="nope", failure_class=FailureClass.USER_ERROR, now=LATER)


def test_expire_lease_requeues_then_fails_at_the_limit() -> None:
    job = running_job(max_attempts=2)

    first = job.expire_lease(now=LATER)
    assert (first.to_status, first.reason, first.attempt) == (S.PENDING, "lease_expired", 1)
    assert job.status is S.PENDING
    assert job.failure_class is FailureClass.INFRA_ERROR
    assert "w1" in (job.error or "")

    job.claim(worker_id="w2", claim_id=None, now=LATER, lease=LEASE)
    second = job.expire_lease(now=LATER + LEASE)

    assert (second.to_status, second.attempt) == (S.FAILED, 2)
    assert job.status is S.FAILED
    assert job.failure_class is FailureClass.INFRA_ERROR
    assert "No attempts left" in (job.error or "")


@pytest.mark.parametrize("status", [S.PENDING, S.COMPLETED, S.FAILED, S.CANCELLED])
def test_only_a_running_lease_can_expire(status: JobStatus) -> None:
    with pytest.raises(IllegalTransition):
        make_job(status).expire_lease(now=LATER)


@pytest.mark.parametrize("status", [S.PENDING, S.RUNNING])
def test_cancel_from_pending_or_running(status: JobStatus) -> None:
    job = make_job(status)

    transition = job.cancel(now=LATER)

    assert transition.from_status is status
    assert job.status is S.CANCELLED
    assert job.failure_class is FailureClass.CANCELLED
    assert job.error
    assert job.completed_at == LATER
    assert job.lease_expires_at is None


@pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED, S.CANCELLED])
def test_a_finished_job_cannot_be_cancelled(status: JobStatus) -> None:
    job = make_job(status)
    with pytest.raises(IllegalTransition):
        job.cancel(now=LATER)
    assert job.status is status


def test_worker_presence_toggles_phase_while_pending() -> None:
    job = make_job()

    assert job.mark_worker_presence(has_worker=False, now=LATER) is True
    assert job.phase is JobPhase.NO_WORKER
    assert job.failure_class is FailureClass.NO_WORKER
    assert job.updated_at == LATER

    assert job.mark_worker_presence(has_worker=False, now=LATER) is False

    assert job.mark_worker_presence(has_worker=True, now=LATER) is True
    assert job.phase is JobPhase.QUEUED
    assert job.failure_class is None
    assert job.mark_worker_presence(has_worker=True, now=LATER) is False


@pytest.mark.parametrize("status", [S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED])
def test_worker_presence_leaves_other_statuses_alone(status: JobStatus) -> None:
    job = make_job(status)
    phase, failure_class = job.phase, job.failure_class

    assert job.mark_worker_presence(has_worker=False, now=LATER) is False
    assert (job.phase, job.failure_class, job.updated_at) == (phase, failure_class, NOW)


def test_is_same_claim() -> None:
    claim_id = uuid.uuid4()
    job = make_job()
    assert not job.is_same_claim("w1", claim_id)

    job.claim(worker_id="w1", claim_id=claim_id, now=NOW, lease=LEASE)

    assert job.is_same_claim("w1", claim_id)
    assert not job.is_same_claim("w2", claim_id)
    assert not job.is_same_claim("w1", uuid.uuid4())
    job.cancel(now=LATER)
    assert not job.is_same_claim("w1", claim_id)
