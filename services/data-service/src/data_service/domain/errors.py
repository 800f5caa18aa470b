"""Domain errors: each carries its machine-readable code and HTTP status (servicekit's
DomainError), which the app's one error mapping answers with."""

from uuid import UUID

from servicekit.domain import DomainError


class DatasetNotFound(DomainError):
    code = "dataset_not_found"
    status = 404

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
        self.details = {"jobs": [str(j) for j in jobs]}
