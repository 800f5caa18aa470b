"""Request dependencies: the unit of work (the request owns the transaction), the caller's identity
(servicekit.deps) and the service's state built in the lifespan."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from registry_service.service_layer.litellm import Endpoints
from registry_service.service_layer.models import HubRepos
from registry_service.service_layer.unit_of_work import UnitOfWork
from servicekit.deps import READING, WRITING, UserDep, scope, service_state
from servicekit.uow import Units

__all__ = ["AppState", "ReadUowDep", "StateDep", "UowDep", "UserDep", "scope"]


@dataclass
class AppState:
    # Every entry point's unit of work: HTTP routes, the consumer, the inbox pruning.
    units: Units[UnitOfWork]
    endpoints: Endpoints
    # None unless the platform has a Hub token: then `delete_repo=true` is refused.
    hub: HubRepos | None = None


StateDep = Annotated[AppState, Depends(service_state)]
UowDep = Annotated[UnitOfWork, WRITING]
ReadUowDep = Annotated[UnitOfWork, READING]
