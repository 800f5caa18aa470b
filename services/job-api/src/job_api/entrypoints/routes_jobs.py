"""User routes: the brief's job routes plus the catalogue and paged history.

Writes run in a unit of work that commits before the response starts (deps.writing): a 2xx means
committed. Counters are bumped after the commit, never for a transaction that rolled back.
"""

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from contracts.enums import GPUProvider, JobStatus, JobType, WorkerPool
from contracts.hyperparameters import parse_hyperparameters
from contracts.routing import pool_key
from job_api.adapters.job_queries import JobFilter
from job_api.adapters.throughput import ThroughputHistory
from job_api.entrypoints.deps import (
    AppState,
    StateDep,
    UserDep,
    reading,
    scope,
    writing,
)
from job_api.entrypoints.metrics import JOBS_CREATED
from job_api.entrypoints.schemas import (
    NO_NUL,
    BaseModelsResponse,
    FinetuneJobCreate,
    FinetuneJobResponse,
    JobEventResponse,
)
from job_api.entrypoints.schemas_estimate import JobEstimateResponse
from job_api.service_layer import jobs as job_service
from job_api.service_layer.estimates import estimate_job
from servicekit.errors import ApiError
from servicekit.responses import CursorQuery, Data, Page, PageLimit, error_responses, keyset_after

router = APIRouter(prefix="/api/finetune", tags=["jobs"], responses=error_responses(401, 422))


# The events cursor is an event id, in a format the OpenAPI document states exactly (as the jobs
# list's keyset cursor, servicekit.responses.CursorQuery): an empty value means the first page.
EVENTS_CURSOR = r"^$|^[0-9]{1,18}$"


class EventKind(StrEnum):
    STATUS = "status"
    PROGRESS = "progress"


DRY_RUN_DOC = (
    "Check the request as a create would (same errors) and answer 200 with its steps and an "
    "estimate of its time on each kind of worker online that could take it, with warnings when "
    "it would take hours or no worker could take it; nothing is created."
)

IDEMPOTENCY_KEY_DOC = (
    "Makes the POST safe to retry: the same key (from the same user) with the same body returns "
    "the job the first request created, never a second one; the same key with another body is a "
    "409 `idempotency_key_reused`. Keys are kept for a day (JOB_API_IDEMPOTENCY_RETENTION_HOURS)."
)


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


def _request_hash(body: FinetuneJobCreate) -> str:
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


@router.post(
    "/jobs",
    status_code=201,
    response_model=Data[FinetuneJobResponse],
    responses={
        **error_responses(400, 404, 409, 413, 415),
        200: {
            "model": Data[JobEstimateResponse],
            "description": "dry_run=true: the estimate; nothing was created.",
        },
        201: {"description": "Created (or, for a retried Idempotency-Key, the job created first)."},
    },
)
async def create_job(
    body: FinetuneJobCreate,
    user: UserDep,
    state: StateDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", min_length=1, max_length=200, description=IDEMPOTENCY_KEY_DOC
        ),
    ] = None,
    dry_run: Annotated[bool, Query(description=DRY_RUN_DOC)] = False,
) -> Data[FinetuneJobResponse] | JSONResponse:
    """Create a fine-tuning job; it is dispatched to a worker of its type and provider."""
    cmd = job_service.SubmitJob(user_id=user.user_id, **body.model_dump())
    if dry_run:
        async with reading(state) as uow:
            estimate = await estimate_job(
                uow, ThroughputHistory(uow.conn), cmd, state.policy, now=datetime.now(UTC)
            )
        answer: Data[JobEstimateResponse] = Data(data=JobEstimateResponse.of(estimate))
        return JSONResponse(answer.model_dump(mode="json"), status_code=200)
    # Without an Idempotency-Key the job, its outbox and history rows are one INSERT statement
    # (job_service.create_job), which needs no transaction block; with one, the key's claim and
    # the insert commit together.
    async with writing(state, one_statement=idempotency_key is None) as uow:
        job, created = await job_service.create_job(
            uow,
            cmd,
            state.policy,
            now=datetime.now(UTC),
            worker_present=_worker_present(state, user.user_id, body),
            idempotency_key=idempotency_key,
            # Only a retried Idempotency-Key is compared with it.
            request_hash=_request_hash(body) if idempotency_key is not None else "",
        )
        if created:
            counter = JOBS_CREATED.labels(str(job.job_type), str(job.gpu_provider))
            uow.after_commit.append(counter.inc)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return Data(data=FinetuneJobResponse.of(job, state.waiting(job)))


def _worker_present(state: AppState, user_id: str, body: FinetuneJobCreate) -> bool | None:
    """Whether the last presence reading saw a worker that could take the new job (None: no
    reading yet, or one that cannot tell); a new job starts in `no_worker` only on a clear no."""
    owner = None if body.worker_pool is WorkerPool.SHARED else pool_key(user_id)
    group = (body.worker_pool, owner, body.job_type, body.gpu_provider)
    needs = state.policy.catalogue.hardware_class(body.job_type, body.base_model)
    found = state.presence.availability(group, needs)
    return None if found is None else found.online > 0


@router.get("/jobs", responses=error_responses(403))
async def list_jobs(
    state: StateDep,
    user: UserDep,
    status: JobStatus | None = None,
    job_type: JobType | None = None,
    project_id: Annotated[str | None, Query(alias="project", pattern=NO_NUL)] = None,
    gpu_provider: GPUProvider | None = None,
    user_id: Annotated[
        str | None, Query(description="Admins only: one user's jobs.", pattern=NO_NUL)
    ] = None,
    limit: PageLimit = 50,
    cursor: CursorQuery = None,
) -> Page[FinetuneJobResponse]:
    """List your jobs, newest first (admins: everyone's, or one user's with `user_id`)."""
    if user_id is not None and not user.is_admin and user_id != user.user_id:
        raise ApiError(403, "forbidden", "Only admins may list another user's jobs.")
    owner = user_id if user_id is not None else scope(user)
    flt = JobFilter(
        user_id=owner,
        status=status,
        job_type=job_type,
        project_id=project_id,
        gpu_provider=gpu_provider,
    )
    async with reading(state) as uow:
        jobs, nxt = await job_service.list_jobs(uow, flt, limit=limit, after=keyset_after(cursor))
    return Page.after([FinetuneJobResponse.of(j, state.waiting(j)) for j in jobs], nxt, limit)


@router.get("/jobs/{job_id:uuid}", responses=error_responses(404))
async def get_job(job_id: UUID, state: StateDep, user: UserDep) -> Data[FinetuneJobResponse]:
    """One job: status, progress, latest metrics, attempt and lease."""
    async with reading(state) as uow:
        job = await job_service.get_job(uow, job_id, user_id=scope(user))
    return Data(data=FinetuneJobResponse.of(job, state.waiting(job)))


@router.delete("/jobs/{job_id:uuid}", responses=error_responses(404, 409))
async def cancel_job(job_id: UUID, state: StateDep, user: UserDep) -> Data[FinetuneJobResponse]:
    """Cancel a pending or running job (a running worker stops within one step)."""
    async with writing(state) as uow:
        job = await job_service.cancel_job(uow, job_id, user_id=scope(user), now=datetime.now(UTC))
    return Data(data=FinetuneJobResponse.of(job, state.waiting(job)))


@router.get("/jobs/{job_id:uuid}/events", responses=error_responses(404))
async def job_events(
    job_id: UUID,
    state: StateDep,
    user: UserDep,
    kind: Annotated[list[EventKind] | None, Query(description="status and/or progress")] = None,
    limit: PageLimit = 100,
    cursor: Annotated[
        str | None,
        Query(
            pattern=EVENTS_CURSOR,
            description="The `next_cursor` of the previous page; absent or empty for the first.",
        ),
    ] = None,
) -> Page[JobEventResponse]:
    """The job's history, oldest first: status changes and progress (with metrics and logs)."""
    after = int(cursor) if cursor else None
    kinds = [str(k) for k in kind] if kind else None
    async with reading(state) as uow:
        await job_service.get_job(uow, job_id, user_id=scope(user))
        rows = await uow.events.page(job_id, after_id=after, limit=limit + 1, kinds=kinds)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        data=[JobEventResponse.model_validate(dict(r._mapping)) for r in rows],
        next_cursor=str(rows[-1].id) if more else None,
        limit=limit,
    )
