"""User commands on jobs: submit, cancel, and the read side."""

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from contracts.enums import GPUProvider, JobPhase, JobType, WorkerPool
from contracts.hyperparameters import Hyperparameters, parse_hyperparameters
from contracts.routing import DATASET_REF_PREFIX, pool_key
from job_api.adapters.job_queries import JobFilter
from job_api.domain.errors import DomainError, InvalidJob, JobNotFound
from job_api.domain.job import Job
from job_api.service_layer.announce import announce, created_events, status_row
from job_api.service_layer.data_urls import check_external_data_url
from job_api.service_layer.namespaces import check_output_namespace
from job_api.service_layer.unit_of_work import Policy, UnitOfWork

# Hugging Face Hub repo ids: `owner/name`, each part runs of letters and digits joined by single
# `-`, `_` or `.`, not ending in `.git`. The OpenAPI document publishes this very pattern, so a
# client-side validator and the server agree.
OUTPUT_MODEL_PATTERN = (
    r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*/[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*(?<!\.git)$"
)
_OUTPUT_MODEL = re.compile(OUTPUT_MODEL_PATTERN)
# External training data: an https URL with a host name (letters, digits, '.', '-', an optional
# port) and no user info; published in the OpenAPI document as well.
# `\s` differs between Python (adds \x1c-\x1f and \x85) and the ECMA regexes of JSON Schema (adds
# \ufeff): both are named, so the server and the published pattern refuse exactly the same text.
HTTPS_DATA_URL_PATTERN = (
    r"^https://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?"
    r"(?:[/?#][^\s\x1c-\x1f\x85\ufeff@\x00]*)?$"
)
_HTTPS_DATA_URL = re.compile(HTTPS_DATA_URL_PATTERN)


@dataclass(frozen=True)
class SubmitJob:
    user_id: str
    job_type: JobType
    base_model: str
    training_data_url: str
    output_model: str
    gpu_provider: GPUProvider
    project_id: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    worker_pool: WorkerPool = WorkerPool.SHARED


class HyperparameterError(Exception):
    def __init__(self, error: ValidationError) -> None:
        super().__init__(str(error))
        self.error = error


class DatasetNotFound(DomainError):
    code = "dataset_not_found"


class DatasetNotReady(DomainError):
    """job-api's dataset projection (fed by data-service's `dataset.validated`) does not hold
    the dataset: either it was uploaded a moment ago and its event is still on its way (it trails
    the upload's 201 by milliseconds), or it is no dataset of the caller's. Job-api cannot tell
    which without asking data-service, so it answers at once and the client retries."""

    code = "dataset_not_ready"
    retry_after = 1

    def __init__(self, dataset_id: UUID) -> None:
        super().__init__(
            f"Dataset {dataset_id} is not known here yet: a dataset uploaded a moment ago is "
            f"announced within a second, so send the request again after {self.retry_after} s "
            "(Retry-After). A reference that stays unknown is not a dataset of yours."
        )


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used for a different request body; "
            "use a new key for a new job."
        )


def validate_output_model(value: str) -> None:
    if not _OUTPUT_MODEL.fullmatch(value):
        raise InvalidJob(
            "invalid_output_model",
            "output_model must be a Hugging Face Hub repo id `owner/name`: runs of letters and "
            "digits joined by single '-', '_' or '.', not ending in '.git'.",
            "output_model",
        )


async def resolve_training_data(uow: UnitOfWork, cmd: SubmitJob, policy: Policy) -> UUID | None:
    """Returns the dataset id for a dataset reference, None for an external https URL."""
    url = cmd.training_data_url
    if url.startswith(DATASET_REF_PREFIX):
        try:
            dataset_id = UUID(url.removeprefix(DATASET_REF_PREFIX))
        except ValueError:
            raise InvalidJob(
                "invalid_dataset_ref", "The dataset reference is malformed.", "training_data_url"
            ) from None
        dataset = await uow.datasets.get(dataset_id)
        # Another user's dataset answers as one not announced yet: the answer tells nothing
        # about which ids exist. A dataset of the caller's that was deleted is gone for good.
        if dataset is None or dataset.user_id != cmd.user_id:
            raise DatasetNotReady(dataset_id)
        if dataset.deleted:
            raise DatasetNotFound(f"No dataset {dataset_id} is available to you.")
        if str(cmd.job_type) not in dataset.job_types:
            raise InvalidJob(
                "dataset_incompatible",
                f"Dataset {dataset_id} does not have the format a {cmd.job_type} job needs.",
                "training_data_url",
            )
        return dataset_id
    authority = re.match(r"^https://([^/?#]*)", url)
    if authority is not None and "@" in authority.group(1):
        # Credentials would be stored with the job and handed to a worker: refuse them.
        raise InvalidJob(
            "credentials_in_url",
            "training_data_url must not carry a user name or password; upload the file instead.",
            "training_data_url",
        )
    if not _HTTPS_DATA_URL.fullmatch(url):
        raise InvalidJob(
            "invalid_training_data_url",
            f"training_data_url must be a dataset reference ({DATASET_REF_PREFIX}<id>) or an "
            "https URL (host name, optional port, path and query, no user info).",
            "training_data_url",
        )
    if not policy.allow_external_data_urls:
        raise InvalidJob(
            "external_data_url_refused",
            "This deployment accepts only uploaded datasets; upload the file and use its reference.",
            "training_data_url",
        )
    check_external_data_url(url, policy.data_url_allowed_hosts)
    return None


async def _owner_pool(uow: UnitOfWork, cmd: SubmitJob) -> str | None:
    """The owner's private pool for a job that may run there; a private-only job needs a pool
    (an enrolled worker), else its offer would reach no queue."""
    if cmd.worker_pool is WorkerPool.SHARED:
        return None
    if cmd.worker_pool is WorkerPool.PRIVATE and not await uow.workers.has_private_pool(
        cmd.user_id
    ):
        raise InvalidJob(
            "no_private_pool",
            "You have no enrolled worker of your own yet: add one (Workers page, or "
            "POST /api/workers) before creating a private job, or use worker_pool shared or any.",
            "worker_pool",
        )
    return pool_key(cmd.user_id)


async def create_job(
    uow: UnitOfWork,
    cmd: SubmitJob,
    policy: Policy,
    *,
    now: datetime,
    worker_present: bool | None = None,
    idempotency_key: str | None = None,
    request_hash: str = "",
) -> tuple[Job, bool]:
    """Submit a job, once per `idempotency_key` (per user). Returns the job and whether this call
    created it (False: a retry of an earlier request with the same key and body).

    Without a key the only write is one statement (`UnitOfWork.add_job`), so the caller may run
    it without a transaction block; with a key there are two, which must commit together."""
    if idempotency_key is None:
        return await submit_job(uow, cmd, policy, now=now, worker_present=worker_present), True
    job_id = uuid.uuid4()
    taken = await uow.idempotency.claim(
        user_id=cmd.user_id, key=idempotency_key, request_hash=request_hash, job_id=job_id
    )
    if taken is not None:
        existing_id, existing_hash = taken
        if existing_hash != request_hash:
            raise IdempotencyKeyReused()
        return await get_job(uow, existing_id, user_id=cmd.user_id), False
    job = await submit_job(uow, cmd, policy, now=now, worker_present=worker_present, job_id=job_id)
    return job, True


@dataclass(frozen=True)
class CheckedSubmission:
    """What checking a submission found: its hyperparameters with defaults filled, its dataset
    (None for an external URL) and the owner's private pool where it may run there."""

    hyperparameters: Hyperparameters
    dataset_id: UUID | None
    owner_pool: str | None


async def check_submission(uow: UnitOfWork, cmd: SubmitJob, policy: Policy) -> CheckedSubmission:
    """Every check a new job passes, writing nothing (the create and its dry run share it)."""
    if policy.catalogue.find(cmd.job_type, cmd.base_model) is None:
        allowed = ", ".join(policy.catalogue.allowed_ids(cmd.job_type))
        raise InvalidJob(
            "unknown_base_model",
            f"{cmd.base_model!r} is not offered for {cmd.job_type} jobs; choose one of: {allowed}.",
            "base_model",
        )
    validate_output_model(cmd.output_model)
    await check_output_namespace(uow, cmd.user_id, cmd.output_model)
    try:
        hyperparameters = parse_hyperparameters(cmd.job_type, cmd.hyperparameters)
    except ValidationError as exc:
        raise HyperparameterError(exc) from exc
    dataset_id = await resolve_training_data(uow, cmd, policy)
    owner_pool = await _owner_pool(uow, cmd)
    return CheckedSubmission(hyperparameters, dataset_id, owner_pool)


async def submit_job(
    uow: UnitOfWork,
    cmd: SubmitJob,
    policy: Policy,
    *,
    now: datetime,
    worker_present: bool | None = None,
    job_id: UUID | None = None,
) -> Job:
    checked = await check_submission(uow, cmd, policy)
    job = Job(
        id=job_id or uuid.uuid4(),
        user_id=cmd.user_id,
        project_id=cmd.project_id,
        job_type=cmd.job_type,
        base_model=cmd.base_model,
        training_data_url=cmd.training_data_url,
        dataset_id=checked.dataset_id,
        output_model=cmd.output_model,
        gpu_provider=cmd.gpu_provider,
        hyperparameters=checked.hyperparameters.model_dump(mode="json", exclude={"job_type"}),
        max_attempts=policy.max_attempts,
        created_at=now,
        updated_at=now,
        dispatched_at=now,
        hardware_class=policy.catalogue.hardware_class(cmd.job_type, cmd.base_model),
        worker_pool=cmd.worker_pool,
        owner_pool=checked.owner_pool,
    )
    if worker_present is False:
        job.mark_worker_presence(has_worker=False, now=now)
    else:
        job.phase = JobPhase.QUEUED
    await uow.add_job(job, created_events(job), [status_row(job, None)])
    return job


async def get_job(uow: UnitOfWork, job_id: UUID, *, user_id: str | None) -> Job:
    """user_id None means an admin: any job."""
    job = await uow.jobs.get(job_id, user_id=user_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


async def list_jobs(
    uow: UnitOfWork, flt: JobFilter, *, limit: int, after: tuple[datetime, UUID] | None
) -> tuple[list[Job], tuple[datetime, UUID] | None]:
    page = await uow.jobs.search(flt, limit=limit + 1, after=after)
    more = len(page) > limit
    page = page[:limit]
    return page, ((page[-1].created_at, page[-1].id) if more else None)


async def cancel_job(uow: UnitOfWork, job_id: UUID, *, user_id: str | None, now: datetime) -> Job:
    job = await uow.jobs.get(job_id, user_id=user_id, for_update=True)
    if job is None:
        raise JobNotFound(job_id)
    transition = job.cancel(now=now)
    await announce(uow, job, transition, now=now, save=True)
    return job
