"""Domain errors; the entry points map them to the error envelope."""

from uuid import UUID


class DomainError(Exception):
    code = "domain_error"


class DatasetNotFound(DomainError):
    code = "dataset_not_found"

    def __init__(self, dataset_id: UUID) -> None:
        super().__init__(f"No dataset {dataset_id} is available to you.")


class DatasetInUse(DomainError):
    code = "dataset_in_use"

    def __init__(self, dataset_id: UUID, jobs: list[UUID]) -> None:
        super().__init__(
            f"Dataset {dataset_id} is used by {len(jobs)} pending or running job(s); "
            "cancel them or wait for them to finish."
        )
        self.jobs = jobs
