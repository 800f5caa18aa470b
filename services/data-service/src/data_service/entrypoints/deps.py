"""Request dependencies: the unit of work (the request owns the transaction), the caller's identity
(servicekit.deps) and the service's state built in the lifespan."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from data_service.adapters.storage import LocalStorage, S3Storage
from data_service.config import Settings
from data_service.service_layer.unit_of_work import UnitOfWork
from servicekit.deps import READING, WRITING, UserDep, scope, service_state
from servicekit.uow import Units

__all__ = ["AppState", "ReadUowDep", "StateDep", "UowDep", "UserDep", "scope"]


@dataclass
class AppState:
    # Every entry point's unit of work: HTTP routes, the consumer, the inbox pruning. A written
    # unit removes the files of the datasets it deleted once it has committed.
    units: Units[UnitOfWork]
    settings: Settings
    storage: LocalStorage | S3Storage
    ticket_secret: str


StateDep = Annotated[AppState, Depends(service_state)]
UowDep = Annotated[UnitOfWork, WRITING]
ReadUowDep = Annotated[UnitOfWork, READING]
