"""The registry's model events applied to this service's projection of deployed models
(model.deployed with deployed true or false, model.deleted). Applying an event twice, or an old
one after a newer one, changes nothing (domain.deployments.Deployment.supersedes)."""

from collections.abc import Sequence
from datetime import datetime

import structlog

from contracts.events import ModelDeleted, ModelDeployed
from model_server.domain.deployments import Deployment
from model_server.service_layer.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

ModelEvent = tuple[ModelDeployed | ModelDeleted, datetime]


def deployment_of(event: ModelDeployed) -> Deployment:
    return Deployment(
        model_id=event.model_id,
        user_id=event.user_id,
        name=event.repo_id,
        revision=event.revision,
        job_type=event.job_type,
        deployed=event.deployed,
        changed_at=event.deployed_at,
    )


async def _apply(uow: UnitOfWork, incoming: Deployment) -> bool:
    existing = await uow.deployments.lock(incoming.model_id)
    if existing is None:
        if await uow.deployments.insert(incoming):
            return True
        existing = await uow.deployments.lock(incoming.model_id)  # inserted concurrently
    if not incoming.supersedes(existing):
        return False
    await uow.deployments.update(incoming)
    return True


async def apply_events(uow: UnitOfWork, events: Sequence[ModelEvent]) -> int:
    """Apply the events in order; the number that changed the projection."""
    changed = 0
    for event, sent_at in events:
        if isinstance(event, ModelDeployed):
            incoming = deployment_of(event)
        else:
            existing = await uow.deployments.lock(event.model_id)
            if existing is None:
                log.info("projection.delete_of_unknown_model", model_id=str(event.model_id))
                continue
            incoming = Deployment(
                model_id=existing.model_id,
                user_id=existing.user_id,
                name=existing.name,
                revision=existing.revision,
                job_type=existing.job_type,
                deployed=False,
                deleted=True,
                changed_at=max(sent_at, existing.changed_at),
            )
        if await _apply(uow, incoming):
            changed += 1
            log.info(
                "projection.changed",
                model_id=str(incoming.model_id),
                name=incoming.name,
                deployed=incoming.live,
            )
    return changed
