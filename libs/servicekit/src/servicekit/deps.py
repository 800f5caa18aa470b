"""Request dependencies every service built by servicekit.app shares: the caller's identity and the
unit of work, opened through the service state's `units` (servicekit.uow.Units).

    UowDep = Annotated[UnitOfWork, WRITING]      # one transaction, committed before the response
    ReadUowDep = Annotated[UnitOfWork, READING]  # an autocommit connection for reads

Both are function-scoped: the transaction commits (or the connection goes back) when the route
function returns, before the response is sent, so a 2xx always means committed and a failed commit
is an error response. A route that writes after other work (an upload) opens
`state.units.writing()` in its body instead, the same unit of work.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials

from servicekit.auth import Principal, bearer_token
from servicekit.errors import ApiError
from servicekit.security import USER_BEARER
from servicekit.service import Platform, ServiceState
from servicekit.uow import function_scoped


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


async def service_state(request: Request) -> Any:
    """The service's own state (what its `Service.start` built), for a dependency typed with it:
    `StateDep = Annotated[AppState, Depends(service_state)]`. A coroutine: FastAPI runs a plain
    function dependency in its thread pool, one thread hop per request for an attribute read."""
    return request.app.state.service


async def _writing(request: Request) -> AsyncIterator[Any]:
    async with _state(request).units.writing() as uow:
        yield uow


async def _reading(request: Request) -> AsyncIterator[Any]:
    async with _state(request).units.reading() as uow:
        yield uow


WRITING = function_scoped(_writing)
READING = function_scoped(_reading)


async def current_user(
    request: Request,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(USER_BEARER)],
) -> Principal:
    """The caller, from the user token in `Authorization: Bearer` (401 without a valid one)."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise ApiError(401, "unauthorized", "Send a user token as `Authorization: Bearer <JWT>`.")
    platform = platform_of(request)
    if platform.verify_in_loop:
        return platform.verifier.verify(token)
    return await run_in_threadpool(platform.verifier.verify, token)


UserDep = Annotated[Principal, Depends(current_user)]


def scope(principal: Principal) -> str | None:
    """The user id every query is scoped to; None for an admin (all users)."""
    return None if principal.is_admin else principal.user_id
