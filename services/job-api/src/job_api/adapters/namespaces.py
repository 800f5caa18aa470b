"""SQL of output namespaces: admins' grants and linked Hugging Face accounts."""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
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


class NamespaceRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

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
        stmt = sa.select(
            hf_accounts.c.user_id,
            hf_accounts.c.hf_username,
            hf_accounts.c.token_ciphertext,
            hf_accounts.c.linked_at,
        ).where(hf_accounts.c.user_id == user_id)
        row = (await self._conn.execute(stmt)).first()
        return LinkedAccount(*row) if row is not None else None

    async def link(self, user_id: str, hf_username: str, token_ciphertext: str) -> datetime:
        """Link (or re-link) the user's Hub account; returns when."""
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
