"""Enumerations every service and the worker agree on."""

from enum import StrEnum


class JobType(StrEnum):
    EMBEDDING = "embedding"
    CLASSIFIER = "classifier"
    LLM_LORA = "llm_lora"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class GPUProvider(StrEnum):
    COLAB = "colab"
    KAGGLE = "kaggle"
    RUNPOD = "runpod"
    LOCAL = "local"


class WorkerPool(StrEnum):
    """Which workers may run a job: the operator's shared pool, the owner's own enrolled workers
    (their Colab, their box), or whichever takes it first."""

    SHARED = "shared"
    PRIVATE = "private"
    ANY = "any"


class FailureClass(StrEnum):
    """Why a job is not progressing: a bad input, the platform, nobody to run it, or the user."""

    USER_ERROR = "user_error"
    INFRA_ERROR = "infra_error"
    NO_WORKER = "no_worker"
    CANCELLED = "cancelled"


class JobPhase(StrEnum):
    """Finer-grained than status: where a job is inside `pending` or `running`."""

    QUEUED = "queued"
    NO_WORKER = "no_worker"
    CLAIMED = "claimed"
    DOWNLOADING = "downloading"
    TRAINING = "training"
    EVALUATING = "evaluating"
    UPLOADING = "uploading"
    DONE = "done"


class CancelReason(StrEnum):
    USER = "user"
    STALE_ATTEMPT = "stale_attempt"
    LEASE_EXPIRED = "lease_expired"
    WORKER_REVOKED = "worker_revoked"


class ModelStore(StrEnum):
    """Where a trained model was pushed."""

    HUB = "hub"
    LOCAL = "local"
    S3 = "s3"
