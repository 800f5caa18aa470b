"""SQL for the projection of deployed models and for API keys (SQLAlchemy Core)."""

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import RowMapping
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.enums import JobType
from model_server.adapters.tables import api_keys, deployments
from model_server.domain.deployments import Deployment
from model_server.domain.keys import ApiKey

d = deployments.c
k = api_keys.c


def _deployment(row: RowMapping) -> Deployment:
    return Deployment(
        model_id=row["model_id"],
        user_id=row["user_id"],
        name=row["name"],
        revision=row["revision"],
        job_type=JobType(row["job_type"]),
        deployed=row["deployed"],
        deleted=row["deleted"],
        changed_at=row["changed_at"],
    )


def _values(dep: Deployment) -> dict[str, Any]:
    return {
        "model_id": dep.model_id,
        "user_id": dep.user_id,
        "name": dep.name,
        "revision": dep.revision,
        "job_type": dep.job_type.value,
        "deployed": dep.deployed,
        "deleted": dep.deleted,
        "changed_at": dep.changed_at,
    }


class DeploymentRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lock(self, model_id: UUID) -> Deployment | None:
        row = (
            (
                await self.conn.execute(
                    sa.select(deployments).where(d.model_id == model_id).with_for_update()
                )
            )
            .mappings()
            .first()
        )
        return _deployment(row) if row is not None else None

    async def insert(self, dep: Deployment) -> bool:
        """Insert unless a row exists already (False then)."""
        result = await self.conn.execute(
            pg.insert(deployments)
            .values(**_values(dep))
            .on_conflict_do_nothing()
            .returning(d.model_id)
        )
        return result.first() is not None

    async def update(self, dep: Deployment) -> None:
        await self.conn.execute(
            sa.update(deployments).where(d.model_id == dep.model_id).values(**_values(dep))
        )

    async def live(self) -> list[Deployment]:
        """Every deployed (not deleted) model, of every user."""
        rows = await self.conn.execute(sa.select(deployments).where(d.deployed, sa.not_(d.deleted)))
        return [_deployment(r) for r in rows.mappings()]


def _key(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        secret_sha256=row["secret_sha256"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class ApiKeyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, key: ApiKey) -> None:
        await self.conn.execute(
            sa.insert(api_keys).values(
                id=key.id,
                user_id=key.user_id,
                name=key.name,
                secret_sha256=key.secret_sha256,
                created_at=key.created_at,
            )
        )

    async def get(self, key_id: str) -> ApiKey | None:
        row = (await self.conn.execute(sa.select(api_keys).where(k.id == key_id))).mappings()
        found = row.first()
        return _key(found) if found is not None else None

    async def of_user(self, user_id: str) -> list[ApiKey]:
        rows = await self.conn.execute(
            sa.select(api_keys).where(k.user_id == user_id).order_by(k.created_at.desc(), k.id)
        )
        return [_key(r) for r in rows.mappings()]

    async def revoke(self, key_id: str, user_id: str, now: datetime) -> bool:
        result = await self.conn.execute(
            sa.update(api_keys)
            .where(k.id == key_id, k.user_id == user_id, k.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(k.id)
        )
        return result.first() is not None
