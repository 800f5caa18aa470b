"""A registered model version.

Every completed job registers one version of its output model (`owner/name` v1, v2, ...).
Status follows `registered → deployed → retired`, and a retired version may be deployed again.
At most one version of a name is deployed at a time: deploying a version retires the deployed one,
so a LiteLLM `model_name` (the output name) always means one model.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from contracts.enums import JobType, ModelStore
from registry_service.domain.errors import IllegalTransition, ModelDeployedError


class ModelStatus(StrEnum):
    REGISTERED = "registered"
    DEPLOYED = "deployed"
    RETIRED = "retired"


S = ModelStatus
ALLOWED: dict[ModelStatus, frozenset[ModelStatus]] = {
    S.REGISTERED: frozenset({S.DEPLOYED}),
    S.DEPLOYED: frozenset({S.RETIRED}),
    S.RETIRED: frozenset({S.DEPLOYED}),
}
_HINTS = {
    (S.DEPLOYED, S.DEPLOYED): "It is deployed already.",
    (S.REGISTERED, S.RETIRED): "Only a deployed model can be undeployed.",
    (S.RETIRED, S.RETIRED): "It is not deployed.",
}


def public_uri(store: ModelStore, repo_id: str, revision: str, uri: str) -> str:
    """Where a model is, as users see it: never a path on a worker's machine. A model in a
    worker's local store is `local://owner/name@revision` (model-server resolves it against its
    own store folder); one on the Hub `hf://owner/name@revision`."""
    scheme = urlsplit(uri).scheme.lower()
    if store is ModelStore.HUB:
        return uri if scheme == "hf" else f"hf://{repo_id}@{revision}"
    if store is ModelStore.S3 and scheme == "s3":
        return uri
    return f"local://{repo_id}@{revision}"


@dataclass
class Model:
    id: UUID
    user_id: str
    name: str
    version: int
    job_id: UUID
    attempt: int
    job_type: JobType
    base_model: str
    repo_id: str
    revision: str
    store: ModelStore
    uri: str
    created_at: datetime
    registered_at: datetime
    updated_at: datetime
    project_id: str | None = None
    dataset_id: UUID | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    data_stats: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    status: ModelStatus = ModelStatus.REGISTERED
    deployed_at: datetime | None = None
    retired_at: datetime | None = None
    # The push created the Hub repository for this owner (model.completed said so, for the
    # repository named after the job's output model).
    created_repo: bool = False

    def _move(self, target: ModelStatus, now: datetime) -> None:
        if target not in ALLOWED[self.status]:
            raise IllegalTransition(
                str(self.status), str(target), _HINTS.get((self.status, target), "")
            )
        self.status = target
        self.updated_at = now

    def deploy(self, *, now: datetime) -> None:
        self._move(ModelStatus.DEPLOYED, now)
        self.deployed_at = now
        self.retired_at = None

    def undeploy(self, *, now: datetime) -> None:
        self._move(ModelStatus.RETIRED, now)
        self.retired_at = now

    def check_deletable(self) -> None:
        if self.status is ModelStatus.DEPLOYED:
            raise ModelDeployedError(self.id)

    @property
    def shown_uri(self) -> str:
        """The URI users see (public_uri): never a path on a server."""
        return public_uri(self.store, self.repo_id, self.revision, self.uri)

    @property
    def label(self) -> str:
        """`owner/name v3`: how people refer to one version."""
        return f"{self.name} v{self.version}"
