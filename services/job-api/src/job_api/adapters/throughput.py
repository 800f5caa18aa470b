"""SQL for the dry run's throughput history: job-api's own completed jobs, with the size of their
data (the dataset projection) and the hardware their worker advertised."""

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from job_api.adapters.tables import jobs, known_datasets, workers


@dataclass(frozen=True)
class CompletedRun:
    """One completed job: what it trained on and how long it took, claim to completion."""

    hardware: str | None
    hyperparameters: dict[str, Any]
    rows: int
    estimated_tokens: int | None
    seconds: float


class ThroughputHistory:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def completed_runs(
        self, job_type: str, base_model: str, *, limit: int = 200
    ) -> list[CompletedRun]:
        """The newest completed jobs of a type and base model that trained on an uploaded
        dataset in their first attempt (a retried job's time includes its waits). A job's
        `worker_id` is the enrolled worker's id in hex, or the shared key's holder name, whose
        hardware nobody knows (None)."""
        j, d, w = jobs, known_datasets, workers
        worker_uuid = sa.case(
            (j.c.worker_id.op("~")("^[0-9a-f]{32}$"), sa.cast(j.c.worker_id, pg.UUID)),
            else_=sa.null(),
        )
        seconds = sa.func.extract("epoch", j.c.completed_at - j.c.started_at)
        stmt = (
            sa.select(
                w.c.hardware,
                j.c.hyperparameters,
                d.c.rows,
                d.c.estimated_tokens,
                seconds.label("seconds"),
            )
            .select_from(j.join(d, d.c.dataset_id == j.c.dataset_id))
            .outerjoin(w, w.c.id == worker_uuid)
            .where(
                j.c.status == "completed",
                j.c.job_type == job_type,
                j.c.base_model == base_model,
                j.c.attempt == 1,
                j.c.completed_at > j.c.started_at,
                d.c.rows > 0,
            )
            .order_by(j.c.completed_at.desc())
            .limit(limit)
        )
        return [
            CompletedRun(
                hardware=r.hardware,
                hyperparameters=dict(r.hyperparameters),
                rows=r.rows,
                estimated_tokens=r.estimated_tokens,
                seconds=float(r.seconds),
            )
            for r in (await self._conn.execute(stmt)).all()
        ]
