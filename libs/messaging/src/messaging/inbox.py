"""Inbox: the ids of events a consumer has applied, written in the same transaction as the effect,
so a redelivered event is recognised and skipped (applied exactly once)."""

from collections.abc import Iterable
from datetime import timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection


def inbox_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "inbox",
        metadata,
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


class Inbox:
    def __init__(self, table: sa.Table, *, consumer: str) -> None:
        self.table = table
        self.consumer = consumer
        # One statement for any number of ids: the ids travel as one uuid[] parameter, so it is
        # compiled and prepared once (a multi-row VALUES is compiled anew on every call).
        ids = sa.func.unnest(sa.cast(sa.bindparam("ids"), pg.ARRAY(pg.UUID(as_uuid=True))))
        self._record = (
            pg.insert(table)
            .from_select(
                ["consumer", "event_id"], sa.select(sa.cast(sa.bindparam("consumer"), sa.Text), ids)
            )
            .on_conflict_do_nothing()
            .returning(table.c.event_id)
        )

    async def record_new(self, conn: AsyncConnection, event_ids: Iterable[UUID]) -> set[UUID]:
        """Record the ids; return those not seen before (the ones whose effect must be applied)."""
        ids = list(dict.fromkeys(event_ids))
        if not ids:
            return set()
        result = await conn.execute(self._record, {"consumer": self.consumer, "ids": ids})
        return set(result.scalars().all())

    async def prune(self, conn: AsyncConnection, older_than: timedelta) -> int:
        """Forget ids older than any redelivery could be (the broker's delivery limit bounds it)."""
        t = self.table
        result = await conn.execute(
            sa.delete(t).where(
                t.c.consumer == self.consumer, t.c.processed_at < sa.func.now() - older_than
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
