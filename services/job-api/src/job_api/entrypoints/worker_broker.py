"""What enrolling and revoking a worker does on the broker: its private pool's queues exist, its
broker user exists with its pool's permissions, and a revoked worker's user is gone."""

import structlog

from contracts.routing import SHARED_POOL
from job_api.adapters.broker_admin import BrokerAdminError
from job_api.domain.worker import Worker
from job_api.entrypoints.deps import AppState
from job_api.entrypoints.workers import pool_queue_specs
from job_api.service_layer.unit_of_work import UnitOfWork
from messaging.topology import declare_queue
from servicekit.errors import ApiError

log = structlog.get_logger(__name__)


def _unavailable(what: str) -> ApiError:
    return ApiError(
        503,
        "service_unavailable",
        f"The broker could not {what}; nothing was changed. Try again shortly.",
    )


async def declare_pool(state: AppState, pool: str) -> None:
    """A private pool's work queues (idempotent)."""
    if pool == SHARED_POOL or state.broker is None:
        return
    channel = await state.broker.channel()
    try:
        for spec in pool_queue_specs(state.broker.names, pool):
            await declare_queue(channel, state.broker.names, spec)
    finally:
        await channel.close()


async def provision(state: AppState, uow: UnitOfWork, worker: Worker, token: str) -> None:
    """Inside the enrolling transaction: when the broker refuses, the worker is not enrolled
    (the route answers 503 and the transaction rolls back)."""
    try:
        await declare_pool(state, worker.pool)
    except Exception as exc:
        log.warning("broker.pool_declare_failed", pool=worker.pool, error=repr(exc)[:300])
        raise _unavailable("create the pool's queues") from exc
    if state.broker_admin is None:
        return
    try:
        worker.broker_user = await state.broker_admin.provision(
            worker_id=worker.id.hex, pool=worker.pool, token=token
        )
    except BrokerAdminError as exc:
        log.warning("broker.provision_failed", worker_id=worker.id.hex, error=str(exc))
        # A user half made (permissions missing) must not outlive the refusal.
        try:
            await state.broker_admin.remove(worker_id=worker.id.hex)
        except BrokerAdminError:
            log.warning("broker.cleanup_failed", worker_id=worker.id.hex)
        raise _unavailable("create the worker's broker user") from exc
    await uow.workers.save(worker)


async def deprovision(state: AppState, worker: Worker) -> bool:
    """After a revocation committed: delete the worker's broker user (its connections close at
    once). False when the broker could not be reached; `reconcile` retries."""
    if state.broker_admin is None or worker.broker_user is None:
        return True
    try:
        await state.broker_admin.remove(worker_id=worker.id.hex)
    except BrokerAdminError as exc:
        log.warning("broker.deprovision_failed", worker_id=worker.id.hex, error=str(exc))
        return False
    async with state.units.writing() as uow:
        current = await uow.workers.get(worker.id, for_update=True)
        if current is not None:
            current.broker_user = None
            await uow.workers.save(current)
    return True


async def reconcile(state: AppState) -> None:
    """Revoked workers whose broker user could not be deleted at the time: delete them now (the
    presence monitor runs this)."""
    if state.broker_admin is None:
        return
    async with state.units.reading("watchdog") as uow:
        leftovers = await uow.workers.revoked_with_broker_user()
    for worker in leftovers:
        await deprovision(state, worker)


async def declare_pools(state: AppState) -> None:
    """At start-up: the queues of every private pool (a broker that lost them gets them back)."""
    async with state.units.reading() as uow:
        pools = await uow.workers.private_pools()
    for pool in pools:
        await declare_pool(state, pool)
