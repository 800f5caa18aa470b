"""User routes: the brief's job routes plus the catalogue and paged history."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from contracts.enums import GPUProvider, JobStatus, JobType
from contracts.hyperparameters import parse_hyperparameters
from job_api.adapters.repository import JobFilter
from job_api.entrypoints.deps import ReadUowDep, StateDep, UowDep, UserDep, scope
from job_api.entrypoints.metrics import JOBS_CREATED
from job_api.entrypoints.schemas import (
    BaseModelsResponse,
    FinetuneJobCreate,
    FinetuneJobResponse,
    JobEventResponse,
)
from job_api.service_layer import jobs as job_service
from servicekit.errors import ApiError
from servicekit.responses import Data, Page, decode_cursor, encode_cursor, error_responses

router = APIRouter(prefix="/api/finetune", tags=["jobs"], responses=error_responses(401, 422))

Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]


@router.get("/base-models")
async def base_models(state: StateDep, _user: UserDep) -> Data[list[BaseModelsResponse]]:
    """The base models a job may start from, by job type, with each type's default hyperparameters."""
    catalogue = state.policy.catalogue
    data = [
        BaseModelsResponse(
            job_type=t,
            models=catalogue.for_type(t),
            default_hyperparameters=parse_hyperparameters(t, None).model_dump(
                mode="json", exclude={"job_type"}
            ),
        )
        for t in JobType
    ]
    return Data(data=data)


@router.post("/jobs", status_code=201)
async def create_job(
    body: FinetuneJobCreate, uow: UowDep, state: StateDep, user: UserDep
) -> Data[FinetuneJobResponse]:
    """Create a fine-tuning job; it is dispatched to a worker of its type and provider."""
    cmd = job_service.SubmitJob(user_id=user.user_id, **body.model_dump())
    job = await job_service.submit_job(
        uow,
        cmd,
        state.policy,
        now=datetime.now(UTC),
        worker_present=state.presence.get((body.job_type, body.gpu_provider)),
    )
    JOBS_CREATED.labels(str(job.job_type), str(job.gpu_provider)).inc()
    return Data(data=FinetuneJobResponse.of(job))


@router.get("/jobs", responses=error_responses(403))
async def list_jobs(
    uow: ReadUowDep,
    user: UserDep,
    status: JobStatus | None = None,
    job_type: JobType | None = None,
    project_id: Annotated[str | None, Query(alias="project")] = None,
    gpu_provider: GPUProvider | None = None,
    user_id: Annotated[str | None, Query(description="Admins only: one user's jobs.")] = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> Page[FinetuneJobResponse]:
    """List your jobs, newest first (admins: everyone's, or one user's with `user_id`)."""
    if user_id is not None and not user.is_admin and user_id != user.user_id:
        raise ApiError(403, "forbidden", "Only admins may list another user's jobs.")
    owner = user_id if user_id is not None else scope(user)
    after = None
    if cursor is not None:
        created, job_id = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(str(created)), UUID(str(job_id)))
        except ValueError:
            raise ApiError(
                422,
                "invalid_cursor",
                "The cursor is not valid; use the next_cursor of a previous page.",
            ) from None
    flt = JobFilter(
        user_id=owner,
        status=status,
        job_type=job_type,
        project_id=project_id,
        gpu_provider=gpu_provider,
    )
    jobs, nxt = await job_service.list_jobs(uow, flt, limit=limit, after=after)
    next_cursor = encode_cursor([nxt[0].isoformat(), str(nxt[1])]) if nxt else None
    return Page(
        data=[FinetuneJobResponse.of(j) for j in jobs],
        next_cursor=next_cursor,
        limit=limit,
    )


@router.get("/jobs/{job_id}", responses=error_responses(404))
async def get_job(job_id: UUID, uow: ReadUowDep, user: UserDep) -> Data[FinetuneJobResponse]:
    """One job: status, progress, latest metrics, attempt and lease."""
    job = await job_service.get_job(uow, job_id, user_id=scope(user))
    return Data(data=FinetuneJobResponse.of(job))


@router.delete("/jobs/{job_id}", responses=error_responses(404, 409))
async def cancel_job(job_id: UUID, uow: UowDep, user: UserDep) -> Data[FinetuneJobResponse]:
    """Cancel a pending or running job (a running worker stops within one step)."""
    job = await job_service.cancel_job(uow, job_id, user_id=scope(user), now=datetime.now(UTC))
    return Data(data=FinetuneJobResponse.of(job))


@router.get("/jobs/{job_id}/events", responses=error_responses(404))
async def job_events(
    job_id: UUID,
    uow: ReadUowDep,
    user: UserDep,
    kind: Annotated[list[str] | None, Query(description="progress and/or status")] = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> Page[JobEventResponse]:
    """The job's history, oldest first: status changes, progress, metrics and log lines."""
    await job_service.get_job(uow, job_id, user_id=scope(user))
    after = int(decode_cursor(cursor, 1)[0]) if cursor is not None else None
    rows = await uow.events.page(job_id, after_id=after, limit=limit + 1, kinds=kind)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([rows[-1].id]) if more else None
    return Page(
        data=[JobEventResponse.model_validate(dict(r._mapping)) for r in rows],
        next_cursor=next_cursor,
        limit=limit,
    )
