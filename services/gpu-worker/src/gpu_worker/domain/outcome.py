"""How an attempt ends, and the rules that decide it.

Every way out of an attempt ends in exactly one outcome. What went wrong decides whether the job
fails for good (the user's data or configuration: no retry helps), goes back to the queue for
another attempt (the platform's fault, until shown otherwise), or ends without a word from this
attempt (a cancel: job-api has moved the job on, so a report would be stale).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from contracts.enums import FailureClass, JobType
from gpu_worker.domain.errors import (
    DataCorrupted,
    DataUnavailable,
    InfraError,
    PublishError,
    StopRequested,
    TransientDownloadError,
    UserDataError,
)
from gpu_worker.domain.external_data import external_data_error


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY = "retry"  # infra failure: reported retryable, job-api requeues it
    CANCELLED = "cancelled"
    HANDED_BACK = "handed_back"


class StopReason(StrEnum):
    """Why an attempt was asked to stop."""

    # A cancel, or this worker's credential was revoked: the job is no longer ours, even mid-push.
    CANCELLED = "cancelled"
    # SIGTERM: the attempt checkpoints and hands the job back.
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class Verdict:
    """How an attempt ended and what it reports (job.failed) on its way out."""

    outcome: Outcome
    message: str
    # None: nothing is reported (the job is no longer this attempt's).
    failure_class: FailureClass | None = None
    retryable: bool = False
    # An error nobody classified: worth its traceback in the worker's log.
    unexpected: bool = False


# Infrastructure trouble another attempt may not meet: out of memory, a disk, a flaky network.
_INFRA = (InfraError, DataCorrupted, TransientDownloadError, OSError, MemoryError)


def judge_error(exc: Exception, *, job_type: JobType, external_data: bool) -> Verdict:
    """The verdict on an attempt that raised `exc` (a stop is judged by `judge_stop`).
    `external_data`: the file came from a URL the user gave, so no message quotes it."""
    if isinstance(exc, UserDataError | DataUnavailable):
        message = str(exc) or type(exc).__name__
        if isinstance(exc, UserDataError) and external_data:
            message = external_data_error(exc, job_type)
        return Verdict(Outcome.FAILED, message, FailureClass.USER_ERROR, retryable=False)
    if isinstance(exc, PublishError):
        # The model trained but could not be stored; a refusal (bad token, no write access) is
        # not retried, the rest is.
        outcome = Outcome.RETRY if exc.retryable else Outcome.FAILED
        message = f"pushing the model failed: {exc}"
        return Verdict(outcome, message, FailureClass.INFRA_ERROR, retryable=exc.retryable)
    if isinstance(exc, _INFRA):
        message = str(exc) or type(exc).__name__
        return Verdict(Outcome.RETRY, message, FailureClass.INFRA_ERROR, retryable=True)
    # Includes torch's OutOfMemoryError and anything a trainer did not classify: the platform's
    # fault until shown otherwise, so another attempt gets a chance.
    message = f"the worker failed: {type(exc).__name__}"
    if not external_data:
        message = f"{message}: {exc}"
    return Verdict(
        Outcome.RETRY, message, FailureClass.INFRA_ERROR, retryable=True, unexpected=True
    )


def judge_stop(
    stop: StopRequested,
    reason: StopReason | None,
    *,
    saved: bool,
    synced_during_training: bool,
) -> Verdict:
    """The verdict on an attempt that stopped. `saved`: the checkpoint the stop left was stored;
    `synced_during_training`: an earlier checkpoint was stored while training ran."""
    if reason is StopReason.CANCELLED:
        return Verdict(Outcome.CANCELLED, "cancelled")
    where = "from its checkpoint" if saved else "from the start"
    if synced_during_training and not saved:
        where = "from the last checkpoint saved during training"
    message = (
        "The worker was shut down (SIGTERM) and handed the job back; the next attempt "
        f"resumes {where}."
        if reason is StopReason.SHUTDOWN
        else f"Training stopped unexpectedly ({stop}); the job goes back to the queue."
    )
    return Verdict(Outcome.HANDED_BACK, message, FailureClass.INFRA_ERROR, retryable=True)


def publish_worth_retrying(exc: BaseException) -> bool:
    """Whether another push may succeed where this one failed (never retrains)."""
    if isinstance(exc, PublishError):
        return exc.retryable
    return not isinstance(exc, UserDataError)
