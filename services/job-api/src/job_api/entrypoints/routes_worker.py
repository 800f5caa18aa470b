"""The brief's worker HTTP endpoints, authenticated with a worker credential as a Bearer token:
an enrolled worker's token, or (development, or where allowed) the shared FINETUNE_WORKER_KEY."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from contracts.enums import GPUProvider, JobType
from job_api.entrypoints.deps import AppState, StateDep, WorkerCallerDep, reading, writing
from job_api.entrypoints.schemas import FinetuneJobResponse, FinetuneJobUpdate, WorkerJobResponse
from job_api.service_layer.worker_http import WorkerUpdate, pending_jobs, update_job
from job_api.service_layer.workers import record_request
from servicekit.responses import Data, error_responses


async def seen(state: AppState, worker_id: UUID) -> None:
    async with writing(state) as uow:
        await record_request(uow, worker_id, now=datetime.now(UTC), holding=None)


router = APIRouter(
    prefix="/api/finetune",
    tags=["worker"],
    responses=error_responses(401, 403, 422),
)


@router.get("/jobs/pending")
async def list_pending(
    state: StateDep,
    caller: WorkerCallerDep,
    job_type: JobType | None = None,
    gpu_provider: GPUProvider | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Data[list[FinetuneJobResponse]]:
    """Pending jobs the caller's pool may take, oldest first, for workers that poll over HTTP
    instead of the broker."""
    async with reading(state) as uow:
        jobs = await pending_jobs(
            uow, pool=caller.pool, job_type=job_type, provider=gpu_provider, limit=limit
        )
    if caller.worker is not None:
        await seen(state, caller.worker.id)
    return Data(data=[FinetuneJobResponse.of(j) for j in jobs])


@router.patch("/jobs/{job_id:uuid}", responses=error_responses(404, 409))
async def patch_job(
    job_id: UUID,
    body: FinetuneJobUpdate,
    state: StateDep,
    caller: WorkerCallerDep,
) -> Data[WorkerJobResponse]:
    """Worker update: `running` claims a pending job of the caller's pool (attempt + 1; the
    response carries the data URL and the headers to fetch it with, minted for this claim only),
    then progress, `completed` or `failed`. Only the credential that claimed the job may update
    it, and an update naming another attempt is refused: 409 with the reason, as is a claim by
    a worker whose advertised GPU memory is short of the job's hardware class
    (`insufficient_hardware`). A progress value behind the current one renews the lease and keeps
    the higher value."""
    update = WorkerUpdate(**body.model_dump())
    now = datetime.now(UTC)
    async with writing(state) as uow:
        updated = await update_job(
            uow,
            job_id,
            update,
            state.policy,
            now=now,
            holder=caller.holder,
            pool=caller.pool,
            enrolled=caller.worker,
        )
        if caller.worker is not None:
            await record_request(uow, caller.worker.id, now=now, holding=updated.job)
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
