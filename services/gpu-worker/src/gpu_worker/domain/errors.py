"""The ways an attempt goes wrong, named by what they mean for the job (not by the library that
noticed): the trainers, the data source and the model store raise these, and the attempt's rules
(gpu_worker.domain.outcome) turn each into an outcome and a report."""

from __future__ import annotations

from pathlib import Path


class StopRequested(Exception):
    """Training stopped on request; `checkpoint` is where it was saved (None: before step 1)."""

    def __init__(self, checkpoint: Path | None, message: str = "training stopped on request"):
        super().__init__(message)
        self.checkpoint = checkpoint


class UserDataError(Exception):
    """Bad data or configuration: failure_class user_error, not retried. The message says why."""


class InfraError(Exception):
    """Out of memory, network, preemption: failure_class infra_error, retried."""


class DataUnavailable(Exception):
    """The data URL refused us for good (4xx): the dataset is gone or the ticket is not valid."""


class DataRefused(DataUnavailable):
    """The worker will not fetch this external URL (an internal host, a redirect it does not
    follow, too large, too slow): a user error, not retried."""


class DataCorrupted(Exception):
    """The bytes that arrived are not the file the ticket describes."""


class TransientDownloadError(Exception):
    """Network trouble or a 5xx: worth another try."""


class PublishError(Exception):
    """The model could not be stored. The artifact folder is intact: publishing again later (a new
    call with the same result) pushes it without retraining. `retryable` is False for a refusal
    (a bad token, no write access, an invalid repo id), which no retry fixes."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable
