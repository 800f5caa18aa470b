"""A service's background work, described as data and run the same way in every service.

- `supervised(name, run)`: a long-lived worker (the outbox relay, an event consumer, an RPC
  server), started again a second after it ends or crashes: a crash must not leave the API up with
  nobody relaying or consuming behind it.
- `periodic(name, interval, step)`: a step run forever, `interval` seconds apart (pruning, a
  watchdog); a failed round is logged and the next one runs.
- `Background(name, run)`: anything else that runs until cancelled.

A database or broker outage is one log line per attempt (it repeats until the outage ends);
anything else gets its traceback. `run_all` starts them as tasks and `stop_all` cancels and waits
for every one of them.
"""

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
import structlog

from messaging.broker import Broker
from messaging.consumer import is_infrastructure_error
from messaging.inbox import Inbox
from messaging.outbox import OutboxRelay
from messaging.transactions import Begin
from servicekit.db import asyncpg_dsn

log = structlog.get_logger(__name__)

Step = Callable[[], Awaitable[object]]
RESTART_AFTER_SECONDS = 1.0
INBOX_PRUNE_INTERVAL_SECONDS = 3600.0


@dataclass(frozen=True)
class Background:
    """One piece of background work: `run()` is started as a task named `name` with the app and
    cancelled when it stops."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


def _log_failure(event: str, exc: Exception) -> None:
    if is_infrastructure_error(exc):
        log.warning(event, error=repr(exc)[:300], infrastructure=True)
    else:
        log.error(event, exc_info=exc)


def supervised(name: str, run: Step) -> Background:
    async def keep_running() -> None:
        while True:
            try:
                await run()
                log.warning(f"{name}.stopped")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log_failure(f"{name}.crashed", exc)
            await asyncio.sleep(RESTART_AFTER_SECONDS)

    return Background(name, keep_running)


def periodic(name: str, interval: float, step: Step) -> Background:
    async def repeat() -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log_failure(f"{name}.failed", exc)
            await asyncio.sleep(interval)

    return Background(name, repeat)


def outbox_relay(broker: Broker, database_url: str, table: sa.Table, channel: str) -> OutboxRelay:
    """The relay of a service's outbox, on a connection of its own (not one of the engine's):
    it holds the leader's advisory lock and LISTENs on `channel`."""
    return OutboxRelay(dsn=asyncpg_dsn(database_url), table=table, broker=broker, channel=channel)


def inbox_pruning(
    inbox: Inbox,
    begin: Begin,
    retention: timedelta,
    *,
    interval: float = INBOX_PRUNE_INTERVAL_SECONDS,
) -> Background:
    """Forget processed event ids older than `retention` (longer than any redelivery could come),
    once per `interval`, in a transaction `begin` opens."""

    async def prune() -> None:
        async with begin() as conn:
            await inbox.prune(conn, retention)

    return periodic("inbox_prune", interval, prune)


def run_all(work: Iterable[Background]) -> list[asyncio.Task[None]]:
    return [asyncio.create_task(w.run(), name=w.name) for w in work]


async def stop_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait until every one has ended. A cancellation can be lost
    (aio-pika's channel.close() swallows one; so does Python 3.11's wait_for when its awaitable
    finishes at the same moment) and the task then runs on: cancel again until all have ended."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("background.task_failed", task=task.get_name(), error=repr(task.exception()))
