"""Enrolled workers: enroll, authenticate, revoke, hear their heartbeats, and say who serves what.

A credential is created by an operator (the shared pool) or by a user for their own private pool;
the token is shown once. The holder of a job is the worker whose credential claimed it.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import structlog

from contracts.catalogue import HardwareClass
from contracts.credentials import new_token, parse_token, token_hash
from contracts.enums import GPUProvider, JobType, WorkerPool
from contracts.events import WorkerHeartbeat
from contracts.routing import SHARED_POOL, pool_key
from job_api.adapters.job_queries import PendingGroup
from job_api.domain.errors import DomainError, NotAllowed
from job_api.domain.job import Job
from job_api.domain.worker import Worker
from job_api.service_layer.announce import announce
from job_api.service_layer.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


class WorkerUnauthorized(DomainError):
    code = "invalid_worker_credential"
    status = 401


class WorkerNotFound(DomainError):
    code = "worker_not_found"
    status = 404


@dataclass(frozen=True)
class Enrolled:
    worker: Worker
    token: str


async def enroll(
    uow: UnitOfWork, *, name: str, shared: bool, user_id: str, admin: bool, now: datetime
) -> Enrolled:
    """A new credential: for the shared pool (operators only) or the caller's private pool."""
    if shared and not admin:
        raise NotAllowed(
            "Only an operator (role admin) enrolls workers into the shared pool; enroll into your "
            "private pool instead."
        )
    worker_id = uuid.uuid4()
    token = new_token(worker_id.hex)
    worker = Worker(
        id=worker_id,
        name=name,
        pool=SHARED_POOL if shared else pool_key(user_id),
        owner_id=None if shared else user_id,
        created_by=user_id,
        token_hash=token_hash(token.token),
        created_at=now,
    )
    await uow.workers.add(worker)
    log.info("worker.enrolled", worker_id=worker_id.hex, pool=worker.pool, name=name)
    return Enrolled(worker=worker, token=token.token)


async def authenticate(uow: UnitOfWork, token: str) -> Worker:
    """The enrolled worker a Bearer token belongs to; WorkerUnauthorized otherwise (unknown,
    revoked or wrong secret: one answer, so the reason cannot be probed)."""
    parsed = parse_token(token)
    worker = await uow.workers.authenticating(UUID(parsed.worker_id)) if parsed else None
    if worker is None or not worker.holds_token(token):
        raise WorkerUnauthorized("The worker credential is not valid (unknown or revoked).")
    return worker


async def get_worker(uow: UnitOfWork, worker_id: UUID, *, user_id: str, admin: bool) -> Worker:
    worker = await uow.workers.get(worker_id)
    if worker is None or not worker.visible_to(user_id, admin=admin):
        raise WorkerNotFound(f"No worker {worker_id} is visible to you.")
    return worker


async def revoke(
    uow: UnitOfWork, worker_id: UUID, *, user_id: str, admin: bool, now: datetime
) -> Worker:
    """Revoke a credential: it authenticates nothing from now on, and the attempt it holds ends
    at once (requeued, its worker told to stop) instead of at the end of its lease."""
    worker = await uow.workers.get(worker_id, for_update=True)
    if worker is None or not worker.visible_to(user_id, admin=admin):
        raise WorkerNotFound(f"No worker {worker_id} is visible to you.")
    if not worker.manageable_by(user_id, admin=admin):
        raise NotAllowed("Only an operator revokes a shared-pool worker.")
    if worker.revoked:
        return worker
    worker.revoke(now=now)
    await uow.workers.save(worker)
    for job in await uow.jobs.running_held_by(worker.id.hex):
        transition = job.release_holder(now=now, reason="worker_revoked")
        await announce(uow, job, transition, now=now, save=True)
        log.warning("job.holder_revoked", job_id=str(job.id), worker_id=worker.id.hex)
    log.info("worker.revoked", worker_id=worker.id.hex, by=user_id)
    return worker


async def record_request(
    uow: UnitOfWork, worker_id: UUID, *, now: datetime, holding: Job | None
) -> None:
    """A request from an enrolled worker over HTTP: it is alive (busy when it holds the job)."""
    worker = await uow.workers.get(worker_id, for_update=True)
    if worker is None:
        return
    busy = holding.id if holding is not None and holding.worker_id == worker.id.hex else None
    if busy is not None and holding is not None and holding.status.is_terminal:
        busy = None
    worker.seen(now=now, busy_with=busy)
    if busy is None and holding is not None and worker.current_job_id == holding.id:
        worker.state, worker.current_job_id = "idle", None
    await uow.workers.save(worker)


async def record_heartbeats(
    uow: UnitOfWork, beats: Sequence[WorkerHeartbeat], *, now: datetime
) -> int:
    """Apply the verified heartbeats of a batch; a forged or stale one changes nothing."""
    if not beats:
        return 0
    found = await uow.workers.get_many_for_update(
        [UUID(b.worker_id) for b in beats if _is_hex_id(b.worker_id)]
    )
    applied = 0
    for beat in sorted(beats, key=lambda b: b.sent_at):
        worker = found.get(UUID(beat.worker_id)) if _is_hex_id(beat.worker_id) else None
        if worker is None or not worker.signed_heartbeat(beat):
            log.warning("worker.heartbeat_refused", worker_id=beat.worker_id[:64])
            continue
        if worker.record_heartbeat(beat, now=now):
            applied += 1
    for worker in found.values():
        await uow.workers.save(worker)
    return applied


def _is_hex_id(value: str) -> bool:
    try:
        return UUID(hex=value).hex == value
    except ValueError:
        return False


# ------------------------------------------------------------------------------- availability


@dataclass(frozen=True)
class Availability:
    """Who could take the jobs of a pending group right now."""

    online: int
    idle: int

    @property
    def reason(self) -> str:
        if self.online == 0:
            return "no_worker"
        return "queued" if self.idle else "all_busy"


def could_take(
    worker: Worker, group: PendingGroup, hardware_class: HardwareClass | None = None
) -> bool:
    """Whether `worker` takes the jobs of `group` (of `hardware_class`; None: whatever class)."""
    pool, owner, job_type, provider = group
    if hardware_class is not None and not worker.satisfies(hardware_class):
        return False
    if worker.is_shared:
        return pool is not WorkerPool.PRIVATE and worker.serves(job_type, provider)
    return (
        pool is not WorkerPool.SHARED and worker.pool == owner and worker.serves(job_type, provider)
    )


def availability(
    workers: Iterable[Worker],
    group: PendingGroup,
    *,
    now: datetime,
    online: timedelta,
    hardware_class: HardwareClass | None = None,
) -> Availability:
    """Who could take `group`'s jobs of `hardware_class` (None: of any class)."""
    states = [
        w.status(now=now, online=online) for w in workers if could_take(w, group, hardware_class)
    ]
    live = [s for s in states if s in ("idle", "busy")]
    return Availability(online=len(live), idle=sum(1 for s in live if s == "idle"))


def start_command(group: PendingGroup, public_base_url: str) -> str:
    """The command that starts a worker for a group (the notice a waiting job shows)."""
    pool, _, job_type, provider = group
    where = provider if pool is WorkerPool.SHARED else GPUProvider.LOCAL
    return (
        f"FTD_WORKER_TOKEN=<worker token> ftd-worker run --api-url {public_base_url} "
        f"--provider {where} --job-type {job_type}"
    )


def waiting_notice(
    group: PendingGroup,
    found: Availability,
    *,
    public_base_url: str,
    hardware_class: HardwareClass | None = None,
) -> dict[str, str]:
    """What a pending job tells its owner: nobody serves it (and how to start a worker), every
    worker that could is busy, or it is queued for an idle one. A job that needs a GPU says how
    big (`hardware_class`), wherever it waits."""
    pool, _, job_type, provider = group
    gpu = hardware_class is not None and hardware_class is not HardwareClass.CPU
    if found.reason == "no_worker" and gpu:
        assert hardware_class is not None
        where = (
            f"the shared pool for provider {provider}"
            if pool is WorkerPool.SHARED
            else "your private pool"
            if pool is WorkerPool.PRIVATE
            else f"your private pool or the shared pool for provider {provider}"
        )
        message = (
            f"This job {hardware_class.need()}: no worker with one is online in {where}, so "
            f"it waits for one (a CPU worker never takes it). Start a worker on a machine with "
            f"such a GPU with the command shown."
        )
    elif found.reason == "queued":
        message = "A worker that takes this job is online; it starts shortly."
    elif found.reason == "all_busy":
        message = (
            f"All {found.online} worker(s) that take {job_type} jobs here are busy; this job "
            "starts when one is free."
        )
    elif pool is WorkerPool.SHARED:
        message = (
            f"No worker that takes {job_type} jobs is online in the shared pool for provider "
            f"{provider}. The operator starts shared workers (the command shown); to run it on "
            "a worker of your own instead, create the job with worker_pool `any` or `private` "
            "and add a worker on the Workers page."
        )
    else:
        whose = (
            "your private pool"
            if pool is WorkerPool.PRIVATE
            else f"your private pool or the shared pool for provider {provider}"
        )
        message = (
            f"No worker that takes {job_type} jobs is online in {whose}. Add one on the Workers "
            "page (or POST /api/workers) and start it with the command shown."
        )
    notice = {
        "reason": found.reason,
        "message": message,
        "command": start_command(group, public_base_url),
    }
    if gpu:
        assert hardware_class is not None
        notice["needs"] = hardware_class.need()
    return notice


def job_group(
    worker_pool: WorkerPool, owner_pool: str | None, job_type: JobType, provider: GPUProvider
) -> PendingGroup:
    return (worker_pool, owner_pool, job_type, provider)
