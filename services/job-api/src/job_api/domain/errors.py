"""Domain errors. Entry points map each to an HTTP status and a machine-readable code."""

from uuid import UUID

from contracts.enums import JobStatus


class DomainError(Exception):
    code: str = "domain_error"
    # The HTTP status an entry point answers with (409: the request conflicts with the state).
    status: int = 409


class NotAllowed(DomainError):
    """The caller may not do this (their role or the thing's owner says no)."""

    code = "forbidden"
    status = 403


class JobNotFound(DomainError):
    code = "job_not_found"

    def __init__(self, job_id: UUID) -> None:
        super().__init__(f"Job {job_id} was not found.")
        self.job_id = job_id


class IllegalTransition(DomainError):
    code = "illegal_transition"

    def __init__(self, current: JobStatus, target: JobStatus) -> None:
        super().__init__(f"A {current} job cannot become {target}.")
        self.current = current
        self.target = target


class StaleAttempt(DomainError):
    """A report from someone who does not hold the job (invariant 2): an old attempt, a worker
    other than the holder, a wrong claim secret, or a job that is not running at all. The message
    says which."""

    code = "stale_attempt"

    def __init__(self, message: str, *, current: int, presented: int | None) -> None:
        super().__init__(message)
        self.current = current
        self.presented = presented


class InsufficientHardware(DomainError):
    """A claim by a worker whose advertised hardware does not satisfy the job's class (it should
    never have been offered the job: a worker that consumes queues beyond its hardware)."""

    code = "insufficient_hardware"

    def __init__(self, job_id: UUID, need: str, gpu_memory_gb: int | None) -> None:
        has = "no GPU" if not gpu_memory_gb else f"a {gpu_memory_gb} GB GPU"
        super().__init__(f"Job {job_id} {need}; this worker advertises {has}.")
        self.job_id = job_id


class AlreadyClaimed(DomainError):
    """A claim for a job another worker holds."""

    code = "already_claimed"

    def __init__(self, job_id: UUID, attempt: int, worker_id: str | None) -> None:
        super().__init__(
            f"Job {job_id} is running attempt {attempt} for worker {worker_id}; "
            "only a pending job can be claimed."
        )
        self.attempt = attempt


class InvalidJob(DomainError):
    """A job request that breaks a rule (unknown model, bad output name, bad data reference...)."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
