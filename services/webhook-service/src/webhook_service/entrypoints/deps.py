"""Request dependencies: the unit of work (the request owns the transaction), the caller's identity
(servicekit.deps) and the service's state built in the lifespan."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from servicekit.deps import READING, WRITING, UserDep, scope, service_state
from servicekit.uow import Units
from webhook_service.adapters.sender import HttpSender
from webhook_service.domain.webhooks import UrlPolicy
from webhook_service.service_layer.deliveries import Sender
from webhook_service.service_layer.unit_of_work import UnitOfWork
from webhook_service.service_layer.webhooks import Cipher

__all__ = ["AppState", "ReadUowDep", "StateDep", "UowDep", "UserDep", "scope"]


@dataclass
class AppState:
    units: Units[UnitOfWork]
    cipher: Cipher
    policy: UrlPolicy
    sender: Sender
    transport: HttpSender
    max_webhooks_per_user: int


StateDep = Annotated[AppState, Depends(service_state)]
UowDep = Annotated[UnitOfWork, WRITING]
ReadUowDep = Annotated[UnitOfWork, READING]
