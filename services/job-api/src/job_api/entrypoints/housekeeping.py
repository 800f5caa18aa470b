"""Periodic upkeep that keeps the database from growing without bound, and the worker-presence
monitor. Each step runs in short transactions of a bounded batch through the `watchdog` pool."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from contracts.enums import JobPhase
from job_api.adapters.event_statements import SOURCE
from job_api.adapters.retention import RetentionRepository
from job_api.entrypoints.deps import AppState
from job_api.service_layer.dispatch import mark_worker_presence
from job_api.service_layer.workers import availability

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
            async with state.units.writing("watchdog") as uow:
                n = await step(uow.retention)
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


def presence_step(state: AppState) -> Callable[[], Awaitable[None]]:
    """Read the worker registry (who is online, busy or idle, and what each takes) and say on
    pending jobs whether any worker could take them (`phase` queued or no_worker; the job's
    `waiting` notice also tells "all busy" apart). The pending jobs are counted per group and
    phase in SQL; a group's jobs are loaded only when some of them show the wrong phase (a worker
    came or went), not on every tick."""

    async def step() -> None:
        started = asyncio.get_running_loop().time()
        now = datetime.now(UTC)
        async with state.units.reading("watchdog") as uow:
            seen = await uow.workers.seen_since(now - state.policy.worker_online)
            phases = await uow.jobs.pending_phase_counts()
        state.presence.update(seen, now=now)
        for (group, needs), by_phase in phases.items():
            found = availability(
                seen, group, now=now, online=state.policy.worker_online, hardware_class=needs
            )
            # A claim granted since this reading began proves a worker, whatever it read.
            has_worker = found.online > 0 or state.claimed_since(group, started)
            target = JobPhase.QUEUED if has_worker else JobPhase.NO_WORKER
            if not any(n for phase, n in by_phase.items() if phase != target):
                continue
            async with state.units.writing("watchdog") as uow:
                await mark_worker_presence(
                    uow, group, has_worker=has_worker, now=now, hardware_class=needs
                )

    return step
