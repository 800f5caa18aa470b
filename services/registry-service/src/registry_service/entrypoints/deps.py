"""Request dependencies: the unit of work (the request owns the transaction), the caller's identity
and the process-wide state built in the lifespan."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials

from messaging.broker import Broker
from registry_service.service_layer.litellm import Endpoints
from registry_service.service_layer.models import HubRepos
from registry_service.service_layer.unit_of_work import UnitOfWork
from servicekit.auth import JwtVerifier, Principal, bearer_token
from servicekit.errors import ApiError
from servicekit.security import USER_BEARER
from servicekit.uow import Database, function_scoped


@dataclass
class AppState:
    # Every entry point's transactions: HTTP routes, the consumer, the relay.
    db: Database
    verifier: JwtVerifier
    endpoints: Endpoints
    # None unless the platform has a Hub token: then `delete_repo=true` is refused.
    hub: HubRepos | None = None
    broker: Broker | None = None
    # True when verifying a token needs no I/O (HS256): done on the event loop.
    verify_in_loop: bool = False


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.registry
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_uow(state: StateDep) -> AsyncIterator[UnitOfWork]:
    async with state.db.write() as conn:
        yield UnitOfWork(conn)


async def get_read_uow(state: StateDep) -> AsyncIterator[UnitOfWork]:
    async with state.db.read() as conn:
        yield UnitOfWork(conn)


# Function scope: the transaction commits before the response is sent, so a 2xx always means
# committed and a failed commit is an error response.
UowDep = Annotated[UnitOfWork, function_scoped(get_uow)]
ReadUowDep = Annotated[UnitOfWork, function_scoped(get_read_uow)]


async def current_user(
    request: Request,
    state: StateDep,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(USER_BEARER)],
) -> Principal:
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise ApiError(401, "unauthorized", "Send a user token as `Authorization: Bearer <JWT>`.")
    if state.verify_in_loop:
        return state.verifier.verify(token)
    return await run_in_threadpool(state.verifier.verify, token)


UserDep = Annotated[Principal, Depends(current_user)]


def scope(principal: Principal) -> str | None:
    """The user id every query is scoped to; None for an admin (all users)."""
    return None if principal.is_admin else principal.user_id
