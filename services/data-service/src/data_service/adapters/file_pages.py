"""Datasets listed as OpenAI's file list pages them: oldest or newest first, after a given one."""

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from data_service.adapters.repository import DatasetRow
from data_service.adapters.tables import datasets


async def file_page(
    conn: AsyncConnection,
    *,
    user_id: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
    ascending: bool,
) -> list[DatasetRow]:
    """Up to `limit` datasets (of `user_id`; None: everyone's) past the (created_at, id) `after`,
    in the order asked. The keyset is the one `datasets_user_created` indexes."""
    t = datasets
    key = sa.tuple_(t.c.created_at, t.c.id)
    order = (
        (t.c.created_at.asc(), t.c.id.asc())
        if ascending
        else (t.c.created_at.desc(), t.c.id.desc())
    )
    stmt = sa.select(t).order_by(*order).limit(limit)
    if user_id is not None:
        stmt = stmt.where(t.c.user_id == user_id)
    if after is not None:
        stmt = stmt.where(key > sa.tuple_(*after) if ascending else key < sa.tuple_(*after))
    return [DatasetRow.of(r) for r in (await conn.execute(stmt)).all()]
