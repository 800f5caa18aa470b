"""Domain errors. Entry points map each to an HTTP status and a machine-readable code."""

from uuid import UUID

from contracts.enums import JobStatus


class DomainError(Exception):
    code: str = "domain_error"


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
    """An event or update from an attempt that no longer owns the job (invariant 2)."""

    code = "stale_attempt"

    def __init__(self, current: int, presented: int) -> None:
        super().__init__(
            f"Attempt {presented} no longer owns this job (current attempt is {current})."
        )
        self.current = current
        self.presented = presented


class ProgressWentBackwards(DomainError):
    code = "progress_backwards"

    def __init__(self, current: float, presented: float) -> None:
        super().__init__(
            f"Progress cannot go back from {current:g} to {presented:g} within an attempt."
        )


class InvalidJob(DomainError):
    """A job request that breaks a rule (unknown model, bad output name, bad data reference...)."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
