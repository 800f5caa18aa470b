"""The brief's worker HTTP endpoints, authenticated with the worker key as a Bearer token."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query

from contracts.enums import GPUProvider, JobType
from job_api.entrypoints.deps import StateDep, WorkerDep, reading, writing
from job_api.entrypoints.schemas import FinetuneJobResponse, FinetuneJobUpdate, WorkerJobResponse
from job_api.service_layer.worker_http import WorkerUpdate, pending_jobs, update_job
from servicekit.responses import Data, error_responses

router = APIRouter(
    prefix="/api/finetune",
    tags=["worker"],
    dependencies=[WorkerDep],
    responses=error_responses(401, 403, 422),
)


@router.get("/jobs/pending")
async def list_pending(
    state: StateDep,
    job_type: JobType | None = None,
    gpu_provider: GPUProvider | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Data[list[FinetuneJobResponse]]:
    """Pending jobs, oldest first, for workers that poll over HTTP instead of the broker."""
    async with reading(state) as uow:
        jobs = await pending_jobs(uow, job_type=job_type, provider=gpu_provider, limit=limit)
    return Data(data=[FinetuneJobResponse.of(j) for j in jobs])


@router.patch("/jobs/{job_id:uuid}", responses=error_responses(404, 409))
async def patch_job(
    job_id: UUID,
    body: FinetuneJobUpdate,
    state: StateDep,
    x_worker_id: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Names the worker (default `http-worker`): a claim is granted to one "
            "worker, and only that worker's updates apply.",
        ),
    ] = None,
) -> Data[WorkerJobResponse]:
    """Worker update: `running` claims a pending job (attempt + 1; the response carries the data
    URL, minted for this claim only), then progress, `completed` or `failed`. Only the worker that
    claimed the job may update it, and an update naming another attempt is refused: 409 with the
    reason. A progress value behind the current one renews the lease and keeps the higher value."""
    update = WorkerUpdate(**body.model_dump())
    async with writing(state) as uow:
        updated = await update_job(
            uow, job_id, update, state.policy, now=datetime.now(UTC), worker_id=x_worker_id
        )
    ticket = updated.data
    response = WorkerJobResponse(
        **FinetuneJobResponse.of(updated.job).model_dump(),
        data_url=ticket.url if ticket is not None else None,
        data_headers=(
            {"Authorization": f"Bearer {ticket.token}"}
            if ticket is not None and ticket.token
            else None
        ),
    )
    return Data(data=response)
