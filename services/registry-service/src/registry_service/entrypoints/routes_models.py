"""User routes: list, get, deploy, undeploy and delete models; the LiteLLM configuration."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import yaml
from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from contracts.enums import JobType
from registry_service.adapters.repository import ModelFilter
from registry_service.domain.model import ModelStatus
from registry_service.entrypoints.deps import ReadUowDep, StateDep, UowDep, UserDep, scope
from registry_service.entrypoints.schemas import DeletedResponse, LiteLLMConfig, ModelResponse
from registry_service.service_layer import models as model_service
from registry_service.service_layer.litellm import litellm_config
from servicekit.responses import CursorQuery, Data, Page, PageLimit, error_responses, keyset_after

router = APIRouter(prefix="/api/models", tags=["models"], responses=error_responses(401, 422))


@router.get(
    "/litellm-config",
    response_model=Data[LiteLLMConfig],
    responses={
        200: {
            # The YAML file is the config itself (no envelope): the same structure as `data`.
            "content": {
                "application/yaml": {"schema": {"$ref": "#/components/schemas/LiteLLMConfig"}}
            },
            "description": "JSON in the envelope, or with `format=yaml` the YAML file itself.",
        }
    },
)
async def get_litellm_config(
    uow: ReadUowDep,
    state: StateDep,
    user: UserDep,
    format: Annotated[
        Literal["json", "yaml"],
        Query(description="`json` (default): in the `data` envelope; `yaml`: a config.yaml."),
    ] = "json",
) -> Any:
    """A LiteLLM proxy configuration for your deployed models (see docs/registry.md)."""
    deployed = await model_service.deployed_models(uow, user.user_id)
    config = litellm_config(deployed, state.endpoints)
    if format == "yaml":
        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
        return PlainTextResponse(text, media_type="application/yaml")
    return Data(data=LiteLLMConfig.model_validate(config))


@router.get("")
async def list_models(
    uow: ReadUowDep,
    user: UserDep,
    job_type: Annotated[JobType | None, Query(alias="type", description="Job type.")] = None,
    status: ModelStatus | None = None,
    name: Annotated[str | None, Query(max_length=200, description="One output name.")] = None,
    limit: PageLimit = 50,
    cursor: CursorQuery = None,
) -> Page[ModelResponse]:
    """Your models, newest first; each completed job is one version of its output name."""
    flt = ModelFilter(user_id=scope(user), job_type=job_type, status=status, name=name)
    models, nxt = await model_service.list_models(uow, flt, limit=limit, after=keyset_after(cursor))
    return Page.after([ModelResponse.of(m) for m in models], nxt, limit)


@router.get("/{model_id:uuid}", responses=error_responses(404))
async def get_model(model_id: UUID, uow: ReadUowDep, user: UserDep) -> Data[ModelResponse]:
    """One model version: where it is stored, its metrics against the base model, its status."""
    model = await model_service.get_model(uow, model_id, user_id=scope(user))
    return Data(data=ModelResponse.of(model))


@router.post("/{model_id:uuid}/deploy", responses=error_responses(404, 409))
async def deploy_model(model_id: UUID, uow: UowDep, user: UserDep) -> Data[ModelResponse]:
    """Deploy this version (the deployed version of the same name, if any, is retired)."""
    model = await model_service.deploy_model(
        uow, model_id, user_id=scope(user), now=datetime.now(UTC)
    )
    return Data(data=ModelResponse.of(model))


@router.post("/{model_id:uuid}/undeploy", responses=error_responses(404, 409))
async def undeploy_model(model_id: UUID, uow: UowDep, user: UserDep) -> Data[ModelResponse]:
    """Take this version out of service (status `retired`; it can be deployed again)."""
    model = await model_service.undeploy_model(
        uow, model_id, user_id=scope(user), now=datetime.now(UTC)
    )
    return Data(data=ModelResponse.of(model))


@router.delete("/{model_id:uuid}", responses=error_responses(404, 409, 502))
async def delete_model(
    model_id: UUID,
    uow: UowDep,
    state: StateDep,
    user: UserDep,
    delete_repo: Annotated[
        bool,
        Query(
            description=(
                "Also delete the Hugging Face Hub repository (all its revisions), with the "
                "platform's Hub token. Default: the repository is left as it is."
            )
        ),
    ] = False,
) -> Data[DeletedResponse]:
    """Remove this version from the registry (undeploy it first). Stored files stay unless asked."""
    deleted = await model_service.delete_model(
        uow, model_id, user_id=scope(user), delete_repo=delete_repo, hub=state.hub
    )
    m = deleted.model
    return Data(
        data=DeletedResponse(
            id=m.id,
            name=m.name,
            version=m.version,
            repo_id=m.repo_id,
            deleted=True,
            repo_deleted=deleted.repo_deleted,
            message=deleted.message,
        )
    )
