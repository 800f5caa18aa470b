"""HTTP response bodies."""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from contracts.enums import JobType, ModelStore
from registry_service.domain.model import Model, ModelStatus


class ModelResponse(BaseModel):
    id: UUID
    user_id: str
    name: str = Field(description="The job's output model `owner/name`; versions count per name.")
    version: int = Field(description="1 for the first model registered under this name, then 2...")
    job_id: UUID
    attempt: int
    job_type: JobType
    base_model: str
    repo_id: str = Field(description="Hugging Face Hub repo id (or the local store's owner/name).")
    revision: str = Field(description="Hub commit sha, or the local store's version id.")
    store: ModelStore
    uri: str = Field(
        description=(
            "Where to load it: `hf://owner/name@rev` (the Hub), `local://owner/name@rev` (a "
            "worker's local model store; model-server resolves it against its "
            "FTD_MODEL_STORE_DIR), "
            "`s3://...`. Never a path on a server."
        )
    )
    project_id: str | None
    dataset_id: UUID | None
    metrics: dict[str, float] = Field(description="The fine-tuned model on held-out data.")
    baseline_metrics: dict[str, float] = Field(description="The base model on the same data.")
    data_stats: dict[str, Any]
    hyperparameters: dict[str, Any]
    status: ModelStatus
    created_at: datetime = Field(description="When the job completed (the model was made).")
    registered_at: datetime
    updated_at: datetime
    deployed_at: datetime | None
    retired_at: datetime | None
    created_repo: bool = Field(
        description=(
            "The push created the Hub repository: `DELETE ...?delete_repo=true` may delete it "
            "once no other registered version names it."
        )
    )

    @classmethod
    def of(cls, model: Model) -> "ModelResponse":
        values = {name: getattr(model, name) for name in cls.model_fields}
        values["uri"] = model.shown_uri
        return cls.model_validate(values)


class DeletedResponse(BaseModel):
    id: UUID
    name: str
    version: int
    repo_id: str
    deleted: bool = Field(description="Always true: the version is gone from the registry.")
    repo_deleted: bool = Field(description="Whether the Hub repository was deleted too.")
    message: str = Field(description="What happened, in a sentence.")


class LiteLLMConfig(BaseModel):
    """A LiteLLM proxy `config.yaml`, as JSON (`?format=yaml` gives the YAML text)."""

    model_list: list[dict[str, Any]]
    general_settings: dict[str, Any] | None = Field(
        default=None, description="Present when classifiers are deployed (a pass-through route)."
    )
