"""Request dependencies: the service's state, the unit of work (servicekit.deps) and the caller.

`/v1/` routes take either credential a client can hold: the user's platform JWT, or one of the
user's API keys (`ftdk_<id>_<secret>`, created at /api/keys; a key's row is read once per
`MODEL_SERVER_API_KEY_CACHE_SECONDS`, see service_layer.keys.KeyCache). `/api/keys` takes the JWT only: a
key cannot mint or revoke keys.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials

from model_server.domain import keys
from model_server.service_layer.keys import KeyCache
from model_server.service_layer.serving import ModelPool, Reconciler
from model_server.service_layer.unit_of_work import UnitOfWork
from servicekit.auth import bearer_token
from servicekit.deps import READING, WRITING, UserDep, platform_of, service_state
from servicekit.errors import ApiError
from servicekit.security import USER_BEARER
from servicekit.uow import Units

__all__ = ["AppState", "CallerDep", "ReadUowDep", "StateDep", "UowDep", "UserDep"]


@dataclass
class AppState:
    units: Units[UnitOfWork]
    pool: ModelPool
    reconciler: Reconciler
    replica: str
    keys: KeyCache


StateDep = Annotated[AppState, Depends(service_state)]
UowDep = Annotated[UnitOfWork, WRITING]
ReadUowDep = Annotated[UnitOfWork, READING]


async def current_caller(
    request: Request,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(USER_BEARER)],
) -> str:
    """The user id of the caller of a `/v1/` route, from a JWT or an API key."""
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "Send your token or API key as `Authorization: Bearer <token>` (OpenAI clients: "
            "api_key=...).",
        )
    if keys.looks_like_key(token):
        state: AppState = request.app.state.service
        return await state.keys.user_of(token)
    platform = platform_of(request)
    if platform.verify_in_loop:
        return platform.verifier.verify(token).user_id
    principal = await run_in_threadpool(platform.verifier.verify, token)
    return principal.user_id


CallerDep = Annotated[str, Depends(current_caller)]
