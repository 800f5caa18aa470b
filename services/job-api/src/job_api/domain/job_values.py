"""The Job aggregate's values: the statuses it may move between, a report's credential, a
transition it made, a progress report (contracts' `Progress`, the fields of job.progress), a
pushed model."""

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from contracts.enums import JobStatus, ModelStore
from contracts.worker_reports import Progress

__all__ = [
    "ALLOWED",
    "MAX_BACKOFF",
    "Credential",
    "Progress",
    "PushedModel",
    "Transition",
    "hash_claim_secret",
]

S = JobStatus
ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    S.PENDING: frozenset({S.RUNNING, S.CANCELLED, S.FAILED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.PENDING}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}


# The longest a retried job waits before it is offered again.
MAX_BACKOFF = timedelta(minutes=10)


def hash_claim_secret(secret: str) -> str:
    """What is stored of a claim secret: its sha256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Credential:
    """Who sends a report. `secret_hash` is set on the broker path (the sha256 of the claim secret
    the report carries); the HTTP path has only the worker id, and `attempt` may be None there
    (the brief's worker does not send one): "the attempt I hold"."""

    worker_id: str
    attempt: int | None
    secret_hash: str | None = None


@dataclass(frozen=True)
class PushedModel:
    """Where the worker stored the trained model (model.pushed), announced as model.completed."""

    repo_id: str
    revision: str
    store: ModelStore
    uri: str
    metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    data_stats: dict[str, Any] = field(default_factory=dict)
    # The push created the repository: the registry may delete it with the model.
    created_repo: bool = False


@dataclass(frozen=True)
class Transition:
    """A status change the aggregate made; the service layer turns it into events."""

    from_status: JobStatus
    to_status: JobStatus
    attempt: int
    reason: str | None = None
    model: PushedModel | None = None
