"""Commands on models (deploy, undeploy, delete), registration from model.completed, and reads."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

import structlog

from contracts.enums import ModelStore
from contracts.events import ModelCompleted, ModelDeleted, ModelDeployed
from registry_service.adapters.repository import ModelFilter
from registry_service.domain.errors import ModelNotFound, RepoDeletionRefused
from registry_service.domain.model import Model, public_uri
from registry_service.service_layer.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


class HubRepos(Protocol):
    """Deletes a model repository on the Hugging Face Hub (adapters.hub.HubClient)."""

    async def delete_repo(self, repo_id: str) -> None: ...


@dataclass(frozen=True)
class Deleted:
    model: Model
    repo_deleted: bool

    @property
    def message(self) -> str:
        removed = f"Removed {self.model.label} from the registry"
        if self.repo_deleted:
            return f"{removed} and deleted the Hub repository {self.model.repo_id}."
        if self.model.store is ModelStore.HUB:
            return f"{removed}; the Hub repository {self.model.repo_id} was left as it is."
        return f"{removed}; the stored files at {self.model.shown_uri} were left as they are."


async def register_models(
    uow: UnitOfWork, events: Sequence[ModelCompleted], *, now: datetime
) -> list[Model]:
    """Register one version per completed job. A job already registered (a second event for it,
    whatever its id, or one arriving after its model was deleted) registers nothing."""
    registered = []
    for event in events:
        model_id = uuid.uuid4()
        if not await uow.models.claim_job(event.job_id, model_id):
            log.info("registry.duplicate_completion", job_id=str(event.job_id))
            continue
        version = await uow.models.next_version(event.user_id, event.output_model)
        model = Model(
            id=model_id,
            user_id=event.user_id,
            name=event.output_model,
            version=version,
            job_id=event.job_id,
            attempt=event.attempt,
            job_type=event.job_type,
            base_model=event.base_model,
            repo_id=event.repo_id,
            revision=event.revision,
            store=event.store,
            uri=public_uri(event.store, event.repo_id, event.revision, event.uri),
            project_id=event.project_id,
            dataset_id=event.dataset_id,
            metrics=dict(event.metrics),
            baseline_metrics=dict(event.baseline_metrics),
            data_stats=dict(event.data_stats),
            hyperparameters=dict(event.hyperparameters),
            created_at=event.completed_at,
            registered_at=now,
            updated_at=now,
            # Only a repository named after the job's output model (which job-api checked is
            # in the owner's namespace) may ever be deleted with the model.
            created_repo=(
                event.created_repo
                and event.store is ModelStore.HUB
                and event.repo_id == event.output_model
            ),
        )
        await uow.models.add(model)
        registered.append(model)
        log.info(
            "registry.model_registered",
            model_id=str(model.id),
            job_id=str(event.job_id),
            name=model.name,
            version=version,
        )
    return registered


def _deployed_event(model: Model, *, deployed: bool, now: datetime) -> ModelDeployed:
    return ModelDeployed(
        model_id=model.id,
        job_id=model.job_id,
        user_id=model.user_id,
        repo_id=model.repo_id,
        revision=model.revision,
        job_type=model.job_type,
        deployed=deployed,
        deployed_at=now,
    )


async def get_model(uow: UnitOfWork, model_id: UUID, *, user_id: str | None) -> Model:
    model = await uow.models.get(model_id, user_id=user_id)
    if model is None:
        raise ModelNotFound(model_id)
    return model


async def _locked(uow: UnitOfWork, model_id: UUID, user_id: str | None) -> Model:
    model = await uow.models.get(model_id, user_id=user_id, for_update=True)
    if model is None:
        raise ModelNotFound(model_id)
    return model


async def deploy_model(
    uow: UnitOfWork, model_id: UUID, *, user_id: str | None, now: datetime
) -> Model:
    """Deploy a version; the version of the same name deployed before is retired."""
    # Deploys of one name take the name's lock first, so two of them at once run one after the
    # other (the second retires what the first deployed) instead of deadlocking or failing.
    found = await get_model(uow, model_id, user_id=user_id)
    await uow.models.lock_name(found.user_id, found.name)
    model = await _locked(uow, model_id, user_id)
    model.deploy(now=now)  # raises IllegalTransition before anything else changes
    previous = await uow.models.deployed_version(model.user_id, model.name, for_update=True)
    if previous is not None:
        previous.undeploy(now=now)
        await uow.models.save_status(previous)
        await uow.publish(_deployed_event(previous, deployed=False, now=now))
    await uow.models.save_status(model)
    await uow.publish(_deployed_event(model, deployed=True, now=now))
    return model


async def undeploy_model(
    uow: UnitOfWork, model_id: UUID, *, user_id: str | None, now: datetime
) -> Model:
    model = await _locked(uow, model_id, user_id)
    model.undeploy(now=now)
    await uow.models.save_status(model)
    await uow.publish(_deployed_event(model, deployed=False, now=now))
    return model


async def delete_model(
    uow: UnitOfWork,
    model_id: UUID,
    *,
    user_id: str | None,
    delete_repo: bool,
    hub: HubRepos | None,
) -> Deleted:
    """Remove a version from the registry. Its Hub repository is deleted only when asked, only if
    the platform has a Hub token, only if this version's push created it, and only while no other
    registered version (of any user) names it: the repository holds every revision pushed to it.
    The Hub is asked first, so a refusal or a Hub failure leaves the registry unchanged."""
    model = await _locked(uow, model_id, user_id)
    model.check_deletable()
    if delete_repo:
        if model.store is not ModelStore.HUB:
            raise RepoDeletionRefused(
                "not_a_hub_model",
                f"{model.label} is stored at {model.shown_uri}, not on the Hugging Face Hub; "
                "nothing was deleted.",
                status=422,
            )
        if hub is None:
            raise RepoDeletionRefused(
                "hub_token_not_configured",
                "Deleting Hub repositories is not enabled on this platform "
                "(REGISTRY_SERVICE_HF_TOKEN is not set); nothing was deleted.",
            )
        if not model.created_repo:
            raise RepoDeletionRefused(
                "repo_not_created_by_push",
                f"The Hub repository {model.repo_id} was not created by the push of "
                f"{model.label} (it existed before, or the version predates this record), so "
                "the platform does not delete it. Nothing was deleted.",
            )
        others = await uow.models.count_with_repo(model.repo_id, excluding=model.id)
        if others:
            raise RepoDeletionRefused(
                "repo_shared",
                f"The Hub repository {model.repo_id} also holds {others} other registered "
                "version(s), yours or other users'; it is deleted only once none is left. "
                "Nothing was deleted.",
            )
        await hub.delete_repo(model.repo_id)
    await uow.models.delete(model.id)
    await uow.publish(
        ModelDeleted(
            model_id=model.id, user_id=model.user_id, repo_id=model.repo_id, version=model.version
        )
    )
    log.info(
        "registry.model_deleted",
        model_id=str(model.id),
        name=model.name,
        version=model.version,
        repo_deleted=delete_repo,
    )
    return Deleted(model=model, repo_deleted=delete_repo)


async def list_models(
    uow: UnitOfWork, flt: ModelFilter, *, limit: int, after: tuple[datetime, UUID] | None
) -> tuple[list[Model], tuple[datetime, UUID] | None]:
    """A page, and the sort key to continue after (None on the last page)."""
    rows = await uow.models.search(flt, limit=limit + 1, after=after)
    page = rows[:limit]
    nxt = (page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, nxt


async def deployed_models(uow: UnitOfWork, user_id: str) -> list[Model]:
    return await uow.models.deployed(user_id)
