"""Periodic upkeep that keeps the database from growing without bound, and the worker-presence
monitor. Each step runs in short transactions of a bounded batch through the `watchdog` pool."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from contracts.enums import GPUProvider, JobPhase, JobType
from job_api.adapters.repository import RetentionRepository
from job_api.entrypoints.deps import AppState
from job_api.service_layer.dispatch import mark_worker_presence
from job_api.service_layer.unit_of_work import SOURCE, UnitOfWork
from messaging.broker import Broker
from messaging.topology import consumer_count

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Retention:
    history: timedelta
    idempotency_keys: timedelta
    inbox: timedelta
    batch: int = 1000


async def prune_once(state: AppState, retention: Retention, *, now: datetime) -> dict[str, int]:
    """Delete everything past its retention, batch by batch (one short transaction each)."""
    removed: dict[str, int] = {}
    steps: dict[str, Callable[[RetentionRepository], Awaitable[int]]] = {
        "history": lambda r: r.prune_history(now - retention.history, batch=retention.batch),
        "idempotency_keys": lambda r: r.prune_idempotency_keys(
            now - retention.idempotency_keys, batch=retention.batch
        ),
        "inbox": lambda r: r.prune_inbox(SOURCE, now - retention.inbox, batch=retention.batch),
    }
    for name, step in steps.items():
        total = 0
        while True:
            async with state.db.write("watchdog") as conn:
                n = await step(RetentionRepository(conn))
            total += n
            if n < retention.batch:
                break
        removed[name] = total
    if any(removed.values()):
        log.info("retention.pruned", **removed)
    return removed


def retention_step(state: AppState, retention: Retention) -> Callable[[], Awaitable[object]]:
    async def step() -> object:
        return await prune_once(state, retention, now=datetime.now(UTC))

    return step


def presence_step(state: AppState, broker: Broker) -> Callable[[], Awaitable[None]]:
    """Ask the broker how many workers consume each work queue and say so on pending jobs (a
    route whose workers are all busy training counts as served: it has a running job). The
    pending jobs are counted per route and phase in SQL; a route's jobs are loaded only when some
    of them show the wrong phase (a worker came or went), not on every tick."""

    async def step() -> None:
        started = asyncio.get_running_loop().time()
        channel = await broker.channel()
        try:
            counts = {
                (t, p): await consumer_count(channel, q)
                for t, p, q in broker.names.all_work_queues()
            }
        finally:
            await channel.close()
        now = datetime.now(UTC)
        async with state.db.read("watchdog") as conn:
            busy = await UnitOfWork(conn).jobs.busy_routes(now)
            phases = await UnitOfWork(conn).jobs.pending_phase_counts()

        def served(route: tuple[JobType, GPUProvider]) -> bool:
            # A claim granted since this reading began proves a worker, whatever it read.
            claimed = state.claimed_at.get(route, float("-inf")) >= started
            return counts.get(route, 0) > 0 or route in busy or claimed

        for route in counts:
            state.presence[route] = served(route)
        for route, by_phase in phases.items():
            has_worker = served(route)
            target = JobPhase.QUEUED if has_worker else JobPhase.NO_WORKER
            if not any(n for phase, n in by_phase.items() if phase != target):
                continue
            async with state.db.write("watchdog") as conn:
                await mark_worker_presence(UnitOfWork(conn), route, has_worker=has_worker, now=now)

    return step
