"""Creating, listing, revoking and checking users' API keys."""

from datetime import datetime

import structlog

from model_server.domain import keys
from model_server.domain.errors import ApiKeyNotFound, InvalidApiKey
from model_server.domain.keys import ApiKey, NewKey
from model_server.service_layer.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


async def create_key(
    uow: UnitOfWork, *, user_id: str, name: str, now: datetime
) -> tuple[ApiKey, NewKey]:
    new = keys.generate()
    key = ApiKey(
        id=new.key_id,
        user_id=user_id,
        name=name,
        secret_sha256=new.secret_sha256,
        created_at=now,
    )
    await uow.keys.add(key)
    log.info("api_key.created", key_id=key.id, user_id=user_id)
    return key, new


async def revoke_key(uow: UnitOfWork, *, user_id: str, key_id: str, now: datetime) -> None:
    if not await uow.keys.revoke(key_id, user_id, now):
        existing = await uow.keys.get(key_id)
        if existing is None or existing.user_id != user_id:
            raise ApiKeyNotFound(key_id)
        return  # revoked already: the same outcome
    log.info("api_key.revoked", key_id=key_id, user_id=user_id)


async def user_of_key(uow: UnitOfWork, token: str) -> str:
    """The user an API key belongs to; InvalidApiKey for anything else."""
    presented = keys.parse(token)
    if presented is None:
        raise InvalidApiKey()
    key = await uow.keys.get(presented.key_id)
    if key is None or not key.matches(presented):
        raise InvalidApiKey()
    return key.user_id
