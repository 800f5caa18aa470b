"""How an attempt ends: which errors fail the job for good, which send it back to the queue, what
a stop reports, and that a file from a user's URL is never quoted (gpu_worker.domain.outcome)."""

from pathlib import Path

import pytest

from contracts.enums import FailureClass, JobType
from gpu_worker.domain.errors import (
    DataCorrupted,
    DataRefused,
    DataUnavailable,
    InfraError,
    PublishError,
    StopRequested,
    TransientDownloadError,
    UserDataError,
)
from gpu_worker.domain.outcome import (
    Outcome,
    StopReason,
    judge_error,
    judge_stop,
    publish_worth_retrying,
)

QUOTED = "row 3: column 'text' is empty or not text (ZZ-FROM-THE-FILE)"


@pytest.mark.parametrize(
    "error",
    [UserDataError("the file has 2 rows; at least 4 are needed"), DataUnavailable("gone (404)")],
)
def test_the_users_data_fails_the_job_for_good(error: Exception) -> None:
    verdict = judge_error(error, job_type=JobType.CLASSIFIER, external_data=False)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.failure_class is FailureClass.USER_ERROR
    assert not verdict.retryable
    assert verdict.message == str(error)


def test_a_refused_external_url_is_the_users_and_keeps_its_reason() -> None:
    error = DataRefused("training_data_url was refused: a private address")
    verdict = judge_error(error, job_type=JobType.EMBEDDING, external_data=True)
    assert (verdict.outcome, verdict.failure_class) == (Outcome.FAILED, FailureClass.USER_ERROR)
    assert verdict.message == str(error)


def test_a_file_from_the_users_url_is_described_never_quoted() -> None:
    verdict = judge_error(UserDataError(QUOTED), job_type=JobType.EMBEDDING, external_data=True)
    assert verdict.outcome is Outcome.FAILED
    assert "ZZ-FROM-THE-FILE" not in verdict.message
    assert "a required value is empty or not text, row 3" in verdict.message
    uploaded = judge_error(UserDataError(QUOTED), job_type=JobType.EMBEDDING, external_data=False)
    assert uploaded.message == QUOTED


@pytest.mark.parametrize(
    "error",
    [
        InfraError("out of GPU memory"),
        DataCorrupted("sha256 mismatch"),
        TransientDownloadError("the data URL answered 503"),
        OSError("No space left on device"),
        MemoryError(),
    ],
)
def test_infrastructure_trouble_goes_back_to_the_queue(error: Exception) -> None:
    verdict = judge_error(error, job_type=JobType.EMBEDDING, external_data=False)
    assert verdict.outcome is Outcome.RETRY
    assert verdict.failure_class is FailureClass.INFRA_ERROR
    assert verdict.retryable
    assert not verdict.unexpected
    assert verdict.message == (str(error) or type(error).__name__)


@pytest.mark.parametrize(("retryable", "outcome"), [(True, Outcome.RETRY), (False, Outcome.FAILED)])
def test_a_push_that_failed_is_retried_unless_it_was_refused(
    retryable: bool, outcome: Outcome
) -> None:
    error = PublishError("403 Forbidden", retryable=retryable)
    verdict = judge_error(error, job_type=JobType.LLM_LORA, external_data=False)
    assert verdict.outcome is outcome
    assert verdict.failure_class is FailureClass.INFRA_ERROR
    assert verdict.retryable is retryable
    assert verdict.message == "pushing the model failed: 403 Forbidden"


def test_an_error_nobody_classified_is_retried_and_flagged() -> None:
    error = KeyError("tokenizer.json")
    verdict = judge_error(error, job_type=JobType.LLM_LORA, external_data=False)
    assert (verdict.outcome, verdict.retryable, verdict.unexpected) == (Outcome.RETRY, True, True)
    assert verdict.message == "the worker failed: KeyError: 'tokenizer.json'"
    # What such an error says may come from the file: with a user's URL only its kind is told.
    external = judge_error(error, job_type=JobType.LLM_LORA, external_data=True)
    assert external.message == "the worker failed: KeyError"


def test_a_cancelled_attempt_reports_nothing() -> None:
    stop = StopRequested(Path("checkpoint-4"))
    verdict = judge_stop(stop, StopReason.CANCELLED, saved=True, synced_during_training=True)
    assert verdict.outcome is Outcome.CANCELLED
    assert verdict.failure_class is None


@pytest.mark.parametrize(
    ("saved", "synced", "where"),
    [
        (True, True, "resumes from its checkpoint"),
        (False, True, "resumes from the last checkpoint saved during training"),
        (False, False, "resumes from the start"),
    ],
)
def test_a_shutdown_hands_the_job_back_saying_where_the_next_attempt_resumes(
    saved: bool, synced: bool, where: str
) -> None:
    stop = StopRequested(Path("checkpoint-4") if saved else None)
    verdict = judge_stop(stop, StopReason.SHUTDOWN, saved=saved, synced_during_training=synced)
    assert verdict.outcome is Outcome.HANDED_BACK
    assert (verdict.failure_class, verdict.retryable) == (FailureClass.INFRA_ERROR, True)
    assert "SIGTERM" in verdict.message
    assert where in verdict.message


def test_a_stop_nobody_asked_for_goes_back_to_the_queue() -> None:
    stop = StopRequested(None, "the trainer did not stop in time")
    verdict = judge_stop(stop, None, saved=False, synced_during_training=False)
    assert verdict.outcome is Outcome.HANDED_BACK
    assert verdict.retryable
    assert "the trainer did not stop in time" in verdict.message


def test_only_a_push_that_may_succeed_is_tried_again() -> None:
    assert publish_worth_retrying(PublishError("503", retryable=True))
    assert not publish_worth_retrying(PublishError("401", retryable=False))
    assert not publish_worth_retrying(UserDataError("output model 'x' is not 'owner/name'"))
    assert publish_worth_retrying(ConnectionResetError())
