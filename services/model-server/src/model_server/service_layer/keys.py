"""Creating, listing, revoking and checking users' API keys."""

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime

import structlog
from cachetools import TTLCache

from model_server.domain import keys
from model_server.domain.errors import ApiKeyNotFound, InvalidApiKey
from model_server.domain.keys import ApiKey, NewKey
from model_server.service_layer.unit_of_work import UnitOfWork

ReadUow = Callable[[], AbstractAsyncContextManager[UnitOfWork]]

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


class KeyCache:
    """API keys read recently, by id, so that a request with a known key needs no database read
    (it still compares the secret's hash). A row is trusted for `ttl` seconds: a key revoked
    through this process is refused at once (`forget`), one revoked through another replica within
    `ttl`. Unknown ids are not kept (nothing to fill the cache with). `ttl` 0: every request reads
    the row. At most `max_entries` are kept (the least recently used go first)."""

    def __init__(
        self,
        read: ReadUow,
        *,
        ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        # A revoked key is kept as None: refused without a read until its entry expires.
        self._rows: TTLCache[str, ApiKey | None] | None = (
            TTLCache(maxsize=max_entries, ttl=ttl, timer=clock) if ttl > 0 else None
        )

    async def user_of(self, token: str) -> str:
        """The user an API key belongs to; InvalidApiKey for anything else."""
        presented = keys.parse(token)
        if presented is None:
            raise InvalidApiKey()
        rows = self._rows
        try:
            if rows is None:
                raise KeyError(presented.key_id)
            key = rows[presented.key_id]  # KeyError once expired, too
        except KeyError:
            async with self._read() as uow:
                key = await uow.keys.get(presented.key_id)
            if key is not None and rows is not None:
                rows[presented.key_id] = key
        if key is None or not key.matches(presented):
            raise InvalidApiKey()
        return key.user_id

    def forget(self, key_id: str) -> None:
        """The key was revoked here: refused from now on. Refused outright for `ttl` (a request
        racing the revocation's commit could otherwise read the row still active), then read."""
        if self._rows is not None:
            self._rows[key_id] = None
