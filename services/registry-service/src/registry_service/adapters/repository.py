"""All SQL of registry-service, built from the caller's connection (the entry point owns the
transaction)."""

import dataclasses
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.enums import JobType, ModelStore
from registry_service.adapters.tables import model_names, models, registered_jobs
from registry_service.domain.model import Model, ModelStatus

_FIELDS = [f.name for f in dataclasses.fields(Model)]
_ENUMS = {"job_type": JobType, "store": ModelStore, "status": ModelStatus}


def model_from_row(row: sa.Row[Any]) -> Model:
    values = dict(row._mapping)
    for key, enum in _ENUMS.items():
        values[key] = enum(values[key])
    return Model(**{k: values[k] for k in _FIELDS})


def model_values(model: Model) -> dict[str, Any]:
    values = {f: getattr(model, f) for f in _FIELDS}
    for key in _ENUMS:
        values[key] = str(values[key])
    return values


_UPDATE_STATUS = (
    sa.update(models)
    .where(models.c.id == sa.bindparam("model_pk"))
    .values(
        status=sa.bindparam("status"),
        updated_at=sa.bindparam("updated_at"),
        deployed_at=sa.bindparam("deployed_at"),
        retired_at=sa.bindparam("retired_at"),
    )
)


@dataclasses.dataclass(frozen=True)
class ModelFilter:
    user_id: str | None
    job_type: JobType | None = None
    status: ModelStatus | None = None
    name: str | None = None


class ModelRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def claim_job(self, job_id: UUID, model_id: UUID) -> bool:
        """Record that `job_id` registers `model_id`; False if that job registered a model before."""
        stmt = (
            pg.insert(registered_jobs)
            .values(job_id=job_id, model_id=model_id)
            .on_conflict_do_nothing()
            .returning(registered_jobs.c.job_id)
        )
        return (await self._conn.execute(stmt)).first() is not None

    async def next_version(self, user_id: str, name: str) -> int:
        """The next version number of (user, name); concurrent callers get distinct numbers."""
        insert = pg.insert(model_names).values(user_id=user_id, name=name, last_version=1)
        stmt = insert.on_conflict_do_update(
            index_elements=[model_names.c.user_id, model_names.c.name],
            set_={"last_version": model_names.c.last_version + 1},
        ).returning(model_names.c.last_version)
        return int((await self._conn.execute(stmt)).scalar_one())

    async def lock_name(self, user_id: str, name: str) -> None:
        """Serialise deploys of one output name (its counter row exists once a version does)."""
        await self._conn.execute(
            sa.select(model_names.c.last_version)
            .where(model_names.c.user_id == user_id, model_names.c.name == name)
            .with_for_update()
        )

    async def add(self, model: Model) -> None:
        await self._conn.execute(sa.insert(models).values(model_values(model)))

    async def save_status(self, model: Model) -> None:
        await self._conn.execute(
            _UPDATE_STATUS,
            {
                "model_pk": model.id,
                "status": str(model.status),
                "updated_at": model.updated_at,
                "deployed_at": model.deployed_at,
                "retired_at": model.retired_at,
            },
        )

    async def delete(self, model_id: UUID) -> None:
        await self._conn.execute(sa.delete(models).where(models.c.id == model_id))

    async def get(
        self, model_id: UUID, *, user_id: str | None, for_update: bool = False
    ) -> Model | None:
        stmt = sa.select(models).where(models.c.id == model_id)
        if user_id is not None:
            stmt = stmt.where(models.c.user_id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self._conn.execute(stmt)).first()
        return model_from_row(row) if row is not None else None

    async def deployed_version(
        self, user_id: str, name: str, *, for_update: bool = False
    ) -> Model | None:
        stmt = sa.select(models).where(
            models.c.user_id == user_id, models.c.name == name, models.c.status == "deployed"
        )
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self._conn.execute(stmt)).first()
        return model_from_row(row) if row is not None else None

    async def count_with_repo(self, repo_id: str, *, excluding: UUID) -> int:
        """Registered versions, of any user, other than `excluding` that name Hub repository
        `repo_id` (the Hub compares repo ids without regard to case)."""
        stmt = (
            sa.select(sa.func.count())
            .select_from(models)
            .where(
                sa.func.lower(models.c.repo_id) == repo_id.lower(),
                models.c.store == "hub",
                models.c.id != excluding,
            )
        )
        return int((await self._conn.execute(stmt)).scalar_one())

    async def search(
        self, flt: ModelFilter, *, limit: int, after: tuple[datetime, UUID] | None = None
    ) -> list[Model]:
        """Newest first (by creation, then id), keyset-paged."""
        stmt = sa.select(models)
        if flt.user_id is not None:
            stmt = stmt.where(models.c.user_id == flt.user_id)
        if flt.job_type is not None:
            stmt = stmt.where(models.c.job_type == str(flt.job_type))
        if flt.status is not None:
            stmt = stmt.where(models.c.status == str(flt.status))
        if flt.name is not None:
            stmt = stmt.where(models.c.name == flt.name)
        if after is not None:
            stmt = stmt.where(sa.tuple_(models.c.created_at, models.c.id) < sa.tuple_(*after))
        stmt = stmt.order_by(models.c.created_at.desc(), models.c.id.desc()).limit(limit)
        return [model_from_row(r) for r in (await self._conn.execute(stmt)).all()]

    async def deployed(self, user_id: str) -> list[Model]:
        stmt = (
            sa.select(models)
            .where(models.c.user_id == user_id, models.c.status == "deployed")
            .order_by(models.c.name, models.c.version)
        )
        return [model_from_row(r) for r in (await self._conn.execute(stmt)).all()]
