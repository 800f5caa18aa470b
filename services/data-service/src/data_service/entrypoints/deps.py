"""Request dependencies: the unit of work, the caller's identity and the process-wide state."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import structlog
from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials

from data_service.adapters.storage import LocalStorage, S3Storage
from data_service.config import Settings
from data_service.service_layer.unit_of_work import UnitOfWork
from messaging.broker import Broker
from servicekit.auth import JwtVerifier, Principal, bearer_token
from servicekit.errors import ApiError
from servicekit.security import USER_BEARER
from servicekit.uow import Database, function_scoped

log = structlog.get_logger(__name__)


@dataclass
class AppState:
    db: Database
    settings: Settings
    storage: LocalStorage | S3Storage
    verifier: JwtVerifier
    ticket_secret: str
    verify_in_loop: bool = False
    broker: Broker | None = None


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.data_service
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_uow(state: StateDep) -> AsyncIterator[UnitOfWork]:
    async with state.db.write() as conn:
        uow = UnitOfWork(conn)
        yield uow
    await remove_files(state, uow.files_to_delete)


async def remove_files(state: AppState, keys: list[str]) -> None:
    """Remove stored files whose rows are gone (after the commit: a rollback keeps both)."""
    for key in keys:
        try:
            await asyncio.to_thread(state.storage.delete, key)
        except Exception:
            log.exception("storage.delete_failed", key=key)


async def get_read_uow(state: StateDep) -> AsyncIterator[UnitOfWork]:
    async with state.db.read() as conn:
        yield UnitOfWork(conn)


# Function scope: the transaction commits before the response is sent (a 2xx means committed).
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
