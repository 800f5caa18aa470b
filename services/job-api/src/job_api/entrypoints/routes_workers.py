"""Enrolled workers: enroll (the token is shown once), list, inspect, revoke; and `/me`, where a
worker learns with its own token who it is and how to reach the broker."""

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from contracts.catalogue import HardwareClass, satisfied_classes
from contracts.enums import GPUProvider, JobType
from contracts.routing import SHARED_POOL
from job_api.adapters.broker_admin import without_credentials
from job_api.domain.worker import Worker, WorkerState
from job_api.entrypoints.deps import (
    AppState,
    StateDep,
    UserDep,
    WorkerCallerDep,
    reading,
    writing,
)
from job_api.entrypoints.worker_broker import deprovision, provision
from job_api.service_layer import workers as service
from servicekit.auth import Principal
from servicekit.errors import ApiError
from servicekit.responses import Data, error_responses

router = APIRouter(prefix="/api/workers", tags=["workers"], responses=error_responses(401, 422))

# Printable, no control characters: a name is shown in the UI and in logs.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"


class WorkerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=100, pattern=NAME_PATTERN, description="A label: `my-colab-t4`."
    )
    pool: Literal["private", "shared"] = Field(
        default="private",
        description=(
            "`private`: your own pool (only your jobs with worker_pool private or any reach it). "
            "`shared`: the operator's pool (role admin only)."
        ),
    )


class WorkerResponse(BaseModel):
    id: UUID
    name: str
    pool: Literal["shared", "private"]
    owner_id: str | None = Field(description="The private pool's owner; null for shared.")
    status: WorkerState = Field(
        description="`idle` or `busy` (online), `offline` (no heartbeat lately), `revoked`."
    )
    provider: GPUProvider | None
    job_types: list[JobType] | None = Field(description="What it takes (its last heartbeat).")
    hardware: str | None
    gpu_memory_gb: int | None = Field(
        description="Its largest GPU's memory (GB), as its heartbeats say; null: no GPU."
    )
    hardware_classes: list[HardwareClass] | None = Field(
        description=(
            "The hardware classes its GPU satisfies: the jobs (by base model) it is offered. "
            "Null before its first heartbeat."
        )
    )
    version: str | None
    current_job_id: UUID | None = Field(
        description="The job it runs: shown to admins and to the owner of a private worker."
    )
    last_seen_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, worker: Worker, state: AppState, viewer: Principal | None) -> "WorkerResponse":
        """`viewer` None: the worker itself (`/me`), which sees all of its own record."""
        own = viewer is None or worker.manageable_by(viewer.user_id, admin=viewer.is_admin)
        return cls(
            id=worker.id,
            name=worker.name,
            pool="shared" if worker.is_shared else "private",
            owner_id=worker.owner_id if own else None,
            status=worker.status(now=datetime.now(UTC), online=state.policy.worker_online),
            provider=worker.provider,
            job_types=worker.job_types,
            hardware=worker.hardware,
            gpu_memory_gb=worker.gpu_memory_gb,
            hardware_classes=(
                None if worker.heartbeat_at is None else satisfied_classes(worker.gpu_memory_gb)
            ),
            version=worker.version,
            current_job_id=worker.current_job_id if own else None,
            last_seen_at=worker.last_seen_at,
            created_at=worker.created_at,
            revoked_at=worker.revoked_at,
        )


class WorkerSetup(BaseModel):
    shell: str = Field(description="Starts the worker on a machine with this repository's worker.")
    colab: str = Field(description="A Colab cell: installs and starts the worker on the GPU.")
    env: dict[str, str] = Field(description="The environment the worker reads.")


class EnrolledWorker(BaseModel):
    worker: WorkerResponse
    token: str = Field(
        description="The worker's credential, shown this once: give it to `ftd-worker`."
    )
    setup: WorkerSetup


class BrokerAccess(BaseModel):
    url: str | None = Field(
        description="The broker URL to dial (without credentials unless a development broker)."
    )
    username: str | None = Field(
        description="The worker's own broker user (its password is its token); null: the URL's."
    )
    prefix: str = Field(description="The topology's name prefix (empty in production).")


class WorkerSelf(BaseModel):
    worker: WorkerResponse
    pool: str = Field(description="`shared`, or the private pool key in queue names.")
    broker: BrokerAccess
    lease_seconds: float


def setup_for(state: AppState, token: str) -> WorkerSetup:
    base = state.policy.public_base_url
    run = f"ftd-worker run --api-url {base}"
    return WorkerSetup(  # noqa: S604 (`shell` is a text field, nothing runs it)
        shell=f"FTD_WORKER_TOKEN='{token}' {run}",
        colab=(
            "# Runtime > Change runtime type > GPU, then run this cell.\n"
            f"!{state.worker_install}\n"
            "import os\n"
            f"os.environ['FTD_WORKER_TOKEN'] = '{token}'\n"
            f"!{run} --provider colab --no-console"
        ),
        env={"FTD_WORKER_TOKEN": token, "FTD_API_URL": base},
    )


def _broker_access(state: AppState, worker: Worker) -> BrokerAccess:
    url = state.worker_amqp_url
    if url is not None and worker.broker_user is not None:
        # The worker's own user replaces whatever credentials the configured URLs name.
        url = without_credentials(url, keep_query=True)
    return BrokerAccess(url=url, username=worker.broker_user, prefix=state.broker_prefix)


@router.post("", status_code=201, responses=error_responses(403, 503))
async def enroll_worker(body: WorkerCreate, user: UserDep, state: StateDep) -> Data[EnrolledWorker]:
    """Enroll a worker: a credential for your private pool (or, for operators, the shared pool).
    The token is in this answer only; revoke the worker to invalidate it."""
    async with writing(state) as uow:
        enrolled = await service.enroll(
            uow,
            name=body.name,
            shared=body.pool == "shared",
            user_id=user.user_id,
            admin=user.is_admin,
            now=datetime.now(UTC),
        )
        await provision(state, uow, enrolled.worker, enrolled.token)
    return Data(
        data=EnrolledWorker(
            worker=WorkerResponse.of(enrolled.worker, state, user),
            token=enrolled.token,
            setup=setup_for(state, enrolled.token),
        )
    )


@router.get("")
async def list_workers(
    user: UserDep,
    state: StateDep,
    pool: Annotated[
        Literal["shared", "private"] | None, Query(description="Only one pool's workers.")
    ] = None,
    include_revoked: bool = False,
) -> Data[list[WorkerResponse]]:
    """The workers you can see: the shared pool and your own (admins: all), newest first."""
    async with reading(state) as uow:
        found = await uow.workers.listed(
            user_id=None if user.is_admin else user.user_id,
            pool=SHARED_POOL if pool == "shared" else None,
            include_revoked=include_revoked,
        )
    if pool == "private":
        found = [w for w in found if not w.is_shared]
    return Data(data=[WorkerResponse.of(w, state, user) for w in found])


@router.get("/me", responses=error_responses(403))
async def who_am_i(caller: WorkerCallerDep, state: StateDep) -> Data[WorkerSelf]:
    """For a worker, with its own token: its identity, pool and how to reach the broker."""
    if caller.worker is None:
        raise ApiError(
            403, "not_enrolled", "The shared worker key has no identity: enroll the worker."
        )
    worker = caller.worker
    return Data(
        data=WorkerSelf(
            worker=WorkerResponse.of(worker, state, None),
            pool=worker.pool,
            broker=_broker_access(state, worker),
            lease_seconds=state.policy.lease.total_seconds(),
        )
    )


@router.get("/{worker_id:uuid}", responses=error_responses(404))
async def get_worker(worker_id: UUID, user: UserDep, state: StateDep) -> Data[WorkerResponse]:
    """One worker you can see."""
    async with reading(state) as uow:
        worker = await service.get_worker(uow, worker_id, user_id=user.user_id, admin=user.is_admin)
    return Data(data=WorkerResponse.of(worker, state, user))


@router.delete("/{worker_id:uuid}", responses=error_responses(403, 404))
async def revoke_worker(worker_id: UUID, user: UserDep, state: StateDep) -> Data[WorkerResponse]:
    """Revoke a worker: its token stops working at once, its broker connection is closed and the
    job it ran goes back to the queue. Operators revoke shared workers; users their own."""
    async with writing(state) as uow:
        worker = await service.revoke(
            uow, worker_id, user_id=user.user_id, admin=user.is_admin, now=datetime.now(UTC)
        )
    state.caches.workers.drop(worker.id)
    await deprovision(state, worker)
    return Data(data=WorkerResponse.of(worker, state, user))
