"""OpenAI-compatible fine-tuning: `/v1/fine_tuning/jobs`, so that the `openai` package's
`client.fine_tuning.jobs.create / list / retrieve / cancel / list_events` and
`client.fine_tuning.jobs.checkpoints.list` work against this service unchanged (a platform token
as the client's api_key).

A job here is a platform job (the same row, dispatch and worker); only the shapes differ:
- `training_file` is a file id from data-service's `/v1/files` (`file-<dataset id>`), the job's
  `ftd://datasets/<id>`. A file uploaded a moment ago may not be announced here yet: that is a
  409 `dataset_not_ready` with Retry-After, which the `openai` package retries by itself.
- `model` is a base model of the catalogue (GET /api/finetune/base-models); anything else is a
  400 `model_not_found`. The job type follows the model, or the file where the model trains
  several types; `ftd_job_type` (in `extra_body`) states it.
- hyperparameters (top-level or under `method.supervised`): n_epochs -> epochs, batch_size,
  learning_rate_multiplier -> learning_rate = multiplier x the type's default; "auto" is the
  default; the type's own names (max_seq_length, lora_r, eval_split...) are accepted beside them.
  `seed` -> the seed hyperparameter. `method.type` dpo or reinforcement: 400 `unsupported_method`;
  `validation_file`, `integrations`, `metadata`: 400 `unsupported_parameter`.
- the model is pushed as `<your namespace>/<base short name>-<suffix>` (a random suffix when none
  is given), the job's `fine_tuned_model` once it succeeded.
- `ftd_gpu_provider` (default local) and `ftd_worker_pool` (default shared) choose the workers.
- status: pending -> queued, running -> running, completed -> succeeded, failed -> failed,
  cancelled -> cancelled (files are validated at upload, so no job is `validating_files`).
- events: the job's history (status changes, progress reports), newest first; checkpoints: the
  pushed model once the job succeeded (no intermediate checkpoints are kept).
- an `Idempotency-Key` header makes a create safe to retry, as on /api/finetune/jobs.
Errors are in OpenAI's shape (entrypoints.openai_errors).
"""

import hashlib
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, Query

from contracts.enums import WorkerPool
from contracts.routing import pool_key
from job_api.adapters.job_queries import JobFilter
from job_api.adapters.openai_history import newest_first
from job_api.domain.errors import JobNotFound
from job_api.domain.job import Job
from job_api.entrypoints.deps import AppState, StateDep, UserDep, reading, scope, writing
from job_api.entrypoints.metrics import JOBS_CREATED
from job_api.entrypoints.openai_errors import OpenAIRoute, openai_error_responses
from job_api.entrypoints.openai_schemas import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobCheckpointList,
    FineTuningJobCreate,
    FineTuningJobEvent,
    FineTuningJobEventList,
    FineTuningJobList,
    job_object,
)
from job_api.service_layer import jobs as job_service
from job_api.service_layer import openai_jobs
from job_api.service_layer.openai_jobs import CHECKPOINT_PREFIX, EVENT_PREFIX, JOB_PREFIX
from job_api.service_layer.unit_of_work import UnitOfWork
from servicekit.errors import ApiError

router = APIRouter(
    prefix="/v1/fine_tuning",
    tags=["openai"],
    route_class=OpenAIRoute,
    responses=openai_error_responses(400, 401),
)

UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
JOB_ID = f"^{JOB_PREFIX}{UUID_PATTERN}$"
Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]


def _unsupported(param: str, message: str) -> ApiError:
    return ApiError(400, "unsupported_parameter", message, {"param": param})


def _command(body: FineTuningJobCreate, user_id: str) -> openai_jobs.CreateFineTune:
    if body.validation_file is not None:
        raise _unsupported(
            "validation_file",
            "validation_file is not offered: the worker holds out `eval_split` of the training "
            "file (a hyperparameter) for evaluation.",
        )
    if body.integrations:
        raise _unsupported("integrations", "integrations are not offered.")
    if body.metadata:
        raise _unsupported("metadata", "metadata is not offered.")
    given = body.hyperparameters.as_dict() if body.hyperparameters else {}
    if body.method is not None:
        if body.method.type != "supervised":
            raise ApiError(
                400,
                "unsupported_method",
                f"Only the supervised method is offered, not {body.method.type}.",
                {"param": "method.type"},
            )
        supervised = body.method.supervised
        if supervised is not None and supervised.hyperparameters is not None:
            if given:
                raise ApiError(
                    400,
                    "conflicting_hyperparameters",
                    "Give hyperparameters either at the top level or under method.supervised.",
                    {"param": "hyperparameters"},
                )
            given = supervised.hyperparameters.as_dict()
    return openai_jobs.CreateFineTune(
        user_id=user_id,
        model=body.model,
        training_file=body.training_file,
        hyperparameters=given,
        suffix=body.suffix,
        seed=body.seed,
        job_type=body.ftd_job_type,
        gpu_provider=body.ftd_gpu_provider,
        worker_pool=body.ftd_worker_pool,
    )


def _worker_present(state: AppState, cmd: job_service.SubmitJob) -> bool | None:
    owner = None if cmd.worker_pool is WorkerPool.SHARED else pool_key(cmd.user_id)
    found = state.availability((cmd.worker_pool, owner, cmd.job_type, cmd.gpu_provider))
    return None if found is None else found.online > 0


@router.post("/jobs", responses=openai_error_responses(404, 409, 413, 415))
async def create_fine_tuning_job(
    body: FineTuningJobCreate,
    user: UserDep,
    state: StateDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> FineTuningJob:
    """Create a fine-tuning job from an uploaded file (OpenAI's request; see the module notes)."""
    cmd = _command(body, user.user_id)
    now = datetime.now(UTC)
    request_hash = hashlib.sha256(
        orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    async with writing(state, one_statement=idempotency_key is None) as uow:
        submit = await openai_jobs.submit_command(uow, cmd, state.policy)
        job, created = await job_service.create_job(
            uow,
            submit,
            state.policy,
            now=now,
            worker_present=_worker_present(state, submit),
            idempotency_key=idempotency_key,
            request_hash=request_hash if idempotency_key is not None else "",
        )
        if created:
            counter = JOBS_CREATED.labels(str(job.job_type), str(job.gpu_provider))
            uow.after_commit.append(counter.inc)
    return job_object(job, now)


def _job_id(value: str, param: str = "fine_tuning_job_id") -> UUID:
    found = openai_jobs.parse_ref(JOB_PREFIX, value)
    if found is None:
        raise ApiError(
            404, "job_not_found", f"No such fine-tuning job: {value!r}.", {"param": param}
        )
    return found


async def _owned_job(uow: UnitOfWork, value: str, user_id: str | None, param: str) -> Job:
    job_id = _job_id(value, param)
    job = await uow.jobs.get(job_id, user_id=user_id)
    if job is None:
        raise ApiError(
            404, "job_not_found", f"No such fine-tuning job: {value!r}.", {"param": param}
        )
    return job


@router.get("/jobs", responses=openai_error_responses(404))
async def list_fine_tuning_jobs(
    state: StateDep,
    user: UserDep,
    after: Annotated[
        str | None, Query(pattern=JOB_ID, description="The last job id of the previous page.")
    ] = None,
    limit: Limit = 20,
) -> FineTuningJobList:
    """Your fine-tuning jobs, newest first; paged with `after`/`limit`."""
    owner = scope(user)
    async with reading(state) as uow:
        cursor = None
        if after is not None:
            anchor = await _owned_job(uow, after, owner, "after")
            cursor = (anchor.created_at, anchor.id)
        jobs, more = await job_service.list_jobs(
            uow, JobFilter(user_id=owner), limit=limit, after=cursor
        )
    now = datetime.now(UTC)
    return FineTuningJobList(data=[job_object(j, now) for j in jobs], has_more=more is not None)


@router.get("/jobs/{fine_tuning_job_id}", responses=openai_error_responses(404))
async def retrieve_fine_tuning_job(
    fine_tuning_job_id: str, state: StateDep, user: UserDep
) -> FineTuningJob:
    """One fine-tuning job."""
    async with reading(state) as uow:
        job = await _owned_job(uow, fine_tuning_job_id, scope(user), "fine_tuning_job_id")
    return job_object(job, datetime.now(UTC))


@router.post("/jobs/{fine_tuning_job_id}/cancel", responses=openai_error_responses(404, 409))
async def cancel_fine_tuning_job(
    fine_tuning_job_id: str, state: StateDep, user: UserDep
) -> FineTuningJob:
    """Cancel a queued or running job (409 `illegal_transition` once it has ended)."""
    job_id = _job_id(fine_tuning_job_id)
    now = datetime.now(UTC)
    async with writing(state) as uow:
        try:
            job = await job_service.cancel_job(uow, job_id, user_id=scope(user), now=now)
        except JobNotFound:
            raise ApiError(
                404, "job_not_found", f"No such fine-tuning job: {fine_tuning_job_id!r}."
            ) from None
    return job_object(job, now)


@router.get("/jobs/{fine_tuning_job_id}/events", responses=openai_error_responses(404))
async def list_fine_tuning_events(
    fine_tuning_job_id: str,
    state: StateDep,
    user: UserDep,
    after: Annotated[
        str | None,
        Query(pattern=f"^{EVENT_PREFIX}[0-9]{{1,18}}$", description="The last event id seen."),
    ] = None,
    limit: Limit = 20,
) -> FineTuningJobEventList:
    """The job's events (status changes, progress and logs), newest first."""
    before = int(after.removeprefix(EVENT_PREFIX)) if after else None
    async with reading(state) as uow:
        job = await _owned_job(uow, fine_tuning_job_id, scope(user), "fine_tuning_job_id")
        rows = await newest_first(uow.conn, job.id, before_id=before, limit=limit + 1)
    events = [
        FineTuningJobEvent.model_validate(openai_jobs.event_of(r.id, r.kind, r.data, r.created_at))
        for r in rows[:limit]
    ]
    return FineTuningJobEventList(data=events, has_more=len(rows) > limit)


@router.get("/jobs/{fine_tuning_job_id}/checkpoints", responses=openai_error_responses(404))
async def list_fine_tuning_checkpoints(
    fine_tuning_job_id: str,
    state: StateDep,
    user: UserDep,
    after: Annotated[
        str | None,
        Query(
            pattern=f"^{CHECKPOINT_PREFIX}{UUID_PATTERN}$", description="The last checkpoint seen."
        ),
    ] = None,
    limit: Limit = 10,
) -> FineTuningJobCheckpointList:
    """The job's checkpoints: its pushed model once it succeeded (none before)."""
    async with reading(state) as uow:
        job = await _owned_job(uow, fine_tuning_job_id, scope(user), "fine_tuning_job_id")
    found = openai_jobs.checkpoints_of(job)
    if after is not None:
        ids = [c["id"] for c in found]
        found = found[ids.index(after) + 1 :] if after in ids else []
    page = [FineTuningJobCheckpoint.model_validate(c) for c in found[:limit]]
    return FineTuningJobCheckpointList(
        data=page,
        first_id=page[0].id if page else None,
        last_id=page[-1].id if page else None,
        has_more=len(found) > limit,
    )
