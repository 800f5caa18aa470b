"""`Idempotency-Key` records of job creation."""

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from job_api.adapters.tables import idempotency_keys


class IdempotencyRepository:
    """`Idempotency-Key` records of job creation, one per (user, key)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def claim(
        self, *, user_id: str, key: str, request_hash: str, job_id: UUID
    ) -> tuple[UUID, str] | None:
        """Record that `key` creates `job_id`; None when this call owns the key now. If the key is
        taken, the (job id, request hash) it was taken with. A concurrent claim of the same key
        waits on the row until the first transaction ends (then sees its row, or takes the key
        if it rolled back), so two retries can never both create a job."""
        t = idempotency_keys
        inserted = await self._conn.execute(
            pg.insert(t)
            .values(user_id=user_id, key=key, request_hash=request_hash, job_id=job_id)
            .on_conflict_do_nothing()
            .returning(t.c.job_id)
        )
        if inserted.first() is not None:
            return None
        row = (
            await self._conn.execute(
                sa.select(t.c.job_id, t.c.request_hash).where(
                    t.c.user_id == user_id, t.c.key == key
                )
            )
        ).first()
        assert row is not None, "a conflicting key row is visible once its transaction ended"
        return row.job_id, row.request_hash
