"""SQL of output namespaces: admins' grants and linked Hugging Face accounts."""

import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from cachetools import TTLCache
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from job_api.adapters.tables import hf_accounts, namespace_grants


@dataclass(frozen=True)
class Grant:
    namespace: str
    user_id: str
    granted_by: str
    created_at: datetime


@dataclass(frozen=True)
class LinkedAccount:
    user_id: str
    hf_username: str
    token_ciphertext: str
    linked_at: datetime


_GRANT_COLUMNS = (
    namespace_grants.c.namespace,
    namespace_grants.c.user_id,
    namespace_grants.c.granted_by,
    namespace_grants.c.created_at,
)


class UnlinkedUsers:
    """Users known, a few seconds ago, to have no linked Hub account: a claim asks about its
    job's owner, and most owners have none, so the answer is remembered instead of read on
    every claim. Linking in this process forgets the user at once; another replica learns of a
    new link within `ttl` (its claims meanwhile push with the worker's own token, as before the
    link). An unlink is always read: a remembered "linked" is never trusted."""

    def __init__(self, ttl: float = 10.0, size: int = 100_000) -> None:
        self._users: TTLCache[str, bool] = TTLCache(size, ttl, timer=time.monotonic)

    def __contains__(self, user_id: str) -> bool:
        return user_id in self._users

    def add(self, user_id: str) -> None:
        self._users[user_id] = True

    def discard(self, user_id: str) -> None:
        self._users.pop(user_id, None)


class NamespaceRepository:
    def __init__(self, conn: AsyncConnection, *, unlinked: UnlinkedUsers | None = None) -> None:
        self._conn = conn
        self._unlinked = unlinked

    async def holds(self, user_id: str, namespace: str) -> bool:
        """Whether a grant or the linked Hub account gives `user_id` this namespace (one
        statement, on the indexes)."""
        granted = sa.select(sa.literal(1)).where(
            namespace_grants.c.user_id == user_id,
            sa.func.lower(namespace_grants.c.namespace) == namespace.lower(),
        )
        linked = sa.select(sa.literal(1)).where(
            hf_accounts.c.user_id == user_id,
            sa.func.lower(hf_accounts.c.hf_username) == namespace.lower(),
        )
        stmt = sa.select(sa.or_(sa.exists(granted), sa.exists(linked)))
        return bool((await self._conn.execute(stmt)).scalar_one())

    async def grants_of(self, user_id: str) -> list[Grant]:
        stmt = (
            sa.select(*_GRANT_COLUMNS)
            .where(namespace_grants.c.user_id == user_id)
            .order_by(namespace_grants.c.created_at, namespace_grants.c.namespace)
        )
        return [Grant(*row) for row in (await self._conn.execute(stmt)).all()]

    async def grant(self, namespace: str, user_id: str, granted_by: str) -> tuple[Grant, bool]:
        """Grant `namespace` to `user_id`; an existing grant (whatever its case) is kept and
        returned with False."""
        insert = (
            pg.insert(namespace_grants)
            .values(namespace=namespace, user_id=user_id, granted_by=granted_by)
            .on_conflict_do_nothing()
            .returning(*_GRANT_COLUMNS)
        )
        row = (await self._conn.execute(insert)).first()
        if row is not None:
            return Grant(*row), True
        existing = await self._conn.execute(
            sa.select(*_GRANT_COLUMNS).where(
                namespace_grants.c.user_id == user_id,
                sa.func.lower(namespace_grants.c.namespace) == namespace.lower(),
            )
        )
        return Grant(*existing.one()), False

    async def revoke(self, namespace: str, user_id: str) -> Grant | None:
        stmt = (
            sa.delete(namespace_grants)
            .where(
                namespace_grants.c.user_id == user_id,
                sa.func.lower(namespace_grants.c.namespace) == namespace.lower(),
            )
            .returning(*_GRANT_COLUMNS)
        )
        row = (await self._conn.execute(stmt)).first()
        return Grant(*row) if row is not None else None

    async def linked_account(self, user_id: str) -> LinkedAccount | None:
        if self._unlinked is not None and user_id in self._unlinked:
            return None
        stmt = sa.select(
            hf_accounts.c.user_id,
            hf_accounts.c.hf_username,
            hf_accounts.c.token_ciphertext,
            hf_accounts.c.linked_at,
        ).where(hf_accounts.c.user_id == user_id)
        row = (await self._conn.execute(stmt)).first()
        if row is None:
            if self._unlinked is not None:
                self._unlinked.add(user_id)
            return None
        return LinkedAccount(*row)

    async def link(self, user_id: str, hf_username: str, token_ciphertext: str) -> datetime:
        """Link (or re-link) the user's Hub account; returns when."""
        if self._unlinked is not None:
            self._unlinked.discard(user_id)
        insert = pg.insert(hf_accounts).values(
            user_id=user_id, hf_username=hf_username, token_ciphertext=token_ciphertext
        )
        stmt = insert.on_conflict_do_update(
            index_elements=[hf_accounts.c.user_id],
            set_={
                "hf_username": insert.excluded.hf_username,
                "token_ciphertext": insert.excluded.token_ciphertext,
                "linked_at": sa.func.now(),
            },
        ).returning(hf_accounts.c.linked_at)
        linked_at: datetime = (await self._conn.execute(stmt)).scalar_one()
        return linked_at

    async def unlink(self, user_id: str) -> bool:
        stmt = (
            sa.delete(hf_accounts)
            .where(hf_accounts.c.user_id == user_id)
            .returning(hf_accounts.c.user_id)
        )
        return (await self._conn.execute(stmt)).first() is not None
