"""job-api's background work: the events consumer, the claim RPC server and the lease watchdog
(servicekit runs them, with the outbox relay; entrypoints/housekeeping.py has the retention and
presence steps). Each owns its transactions like a request does."""

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import traced
from contracts.routing import (
    CLAIM_KEY,
    JOB_API,
    JOB_API_EVENT_BINDINGS,
    WORKER_REPORT_KEYS,
    BrokerNames,
)
from contracts.rpc import ClaimJob, ClaimReply
from job_api.adapters.event_statements import SOURCE
from job_api.adapters.tables import inbox
from job_api.entrypoints.deps import AppState
from job_api.entrypoints.metrics import CLAIMS, LEASES_EXPIRED, WORKER_EVENTS
from job_api.service_layer.dispatch import (
    apply_worker_events,
    claim_job,
    expire_leases,
    redispatch_stale,
)
from job_api.service_layer.reports import Outcome
from messaging.broker import Broker
from messaging.consumer import InboxConsumer, Received
from messaging.inbox import Inbox
from messaging.rpc import Answer, RpcServer
from messaging.topology import QueueSpec, work_queue_specs
from servicekit.service import Platform, own_queue_consumer

log = structlog.get_logger(__name__)

INBOX = Inbox(inbox, consumer=SOURCE)
# The admission pools of the background work (HTTP requests get the rest of the engine's
# connections; the relay is not among them: it holds a connection of its own, as the stream
# hub's LISTEN does): the consumer, the claim server and the watchdog get one or two each;
# streams read in short bursts.
BACKGROUND_POOLS = {"consumer": 2, "rpc": 2, "watchdog": 1, "streams": 2}


def queue_specs(broker: Broker) -> list[QueueSpec]:
    names = broker.names
    return [
        *work_queue_specs(names),
        # Public events from other services, and the worker reports: only this queue binds the
        # worker exchange, so only job-api hears a worker (and fences it).
        QueueSpec(
            name=names.service_queue(JOB_API),
            bindings=JOB_API_EVENT_BINDINGS,
            worker_bindings=WORKER_REPORT_KEYS,
        ),
        QueueSpec(
            name=names.rpc_queue(JOB_API),
            bindings=[CLAIM_KEY],
            exchange=names.claims_exchange,
        ),
    ]


def pool_queue_specs(names: BrokerNames, pool: str) -> list[QueueSpec]:
    """A private pool's work queues (one per job type and hardware class), declared when its
    first worker enrolls and at every start for each pool that has workers."""
    return [
        QueueSpec(name=queue, bindings=names.pool_bindings(pool, job_type, hardware_class))
        for job_type, hardware_class, queue in names.pool_queues(pool)
    ]


def make_consumer(platform: Platform, state: AppState) -> InboxConsumer:
    """The consumer of job-api's queue: the workers' reports and other services' events."""

    async def handle(conn: AsyncConnection, batch: Sequence[Received]) -> Outcome:
        return await apply_worker_events(
            state.units.on(conn), batch, state.policy, now=datetime.now(UTC)
        )

    def count(outcome: object) -> None:
        # Counted after commit: a rolled-back batch is retried and must not count twice.
        if isinstance(outcome, Outcome):
            WORKER_EVENTS.labels("applied").inc(outcome.applied)
            WORKER_EVENTS.labels("stale").inc(outcome.stale)
            WORKER_EVENTS.labels("unknown_job").inc(outcome.unknown_job)

    return own_queue_consumer(platform, state, handle, inbox=INBOX, on_committed=count)


async def _nothing() -> None:
    return None


async def claim_holding(
    state: AppState, cmd: ClaimJob
) -> tuple[ClaimReply, Callable[[], Awaitable[None]]]:
    """Answer a claim. Optimistic first (`state.claims`): the job is read, then saved with its
    events by one statement that applies only if the row did not change in between, with no
    transaction block (two round trips instead of four). When the claim says it needs the row
    lock (a lost race, or a retried claim id), nothing was written, and it runs again in a
    transaction holding the lock.

    Returns the reply and `release`, which ends the optimistic unit (its connection goes back):
    its save committed when the statement completed, so the caller sends the reply first (a
    committed claim either way; the transaction's connection is already back)."""
    held = contextlib.AsyncExitStack()
    try:
        uow = await held.enter_async_context(state.claims.writing("rpc", one_statement=True))
        reply = await claim_job(uow, cmd, state.policy, now=datetime.now(UTC))
    except BaseException as exc:
        await held.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    if reply is not None:
        return reply, held.aclose
    await held.aclose()
    log.info("claim.locking", job_id=str(cmd.job_id))
    async with state.units.writing("rpc") as uow:
        reply = await claim_job(uow, cmd, state.policy, now=datetime.now(UTC))
    assert reply is not None, "a claim under the row lock is always decided"
    return reply, _nothing


@contextlib.contextmanager
def claim_trace(cmd: ClaimJob) -> Iterator[None]:
    """A claim continues its offer's chain of work (a worker that sends none starts one): the
    events it writes and the job spec carry the chain's id, with the claim as their cause."""
    claim_id = str(cmd.claim_id)
    correlation = cmd.correlation_id or claim_id
    fields = {"correlation_id": correlation, "claim_id": claim_id}
    if cmd.causation_id is not None:
        fields["causation_id"] = cmd.causation_id
    with traced(correlation, claim_id), structlog.contextvars.bound_contextvars(**fields):
        yield


def make_rpc_server(state: AppState, broker: Broker) -> RpcServer:
    async def handle(body: bytes) -> Answer:
        cmd = ClaimJob.model_validate_json(body)
        with claim_trace(cmd):
            reply, release = await claim_holding(state, cmd)

        async def then() -> None:
            # Once the reply is on its way: the worker waits neither for the connection to go
            # back to the pool nor for the bookkeeping.
            await release()
            CLAIMS.labels("granted" if reply.granted else str(reply.refusal)).inc()
            if reply.granted and reply.job is not None:
                log.info(
                    "job.claimed",
                    job_id=str(reply.job.job_id),
                    attempt=reply.job.attempt,
                    worker_id=cmd.worker_id,
                )
                # A worker serves these routes (it trains now, consuming nothing): say so at
                # once, rather than after the next presence reading.
                worker = state.caches.workers.get(UUID(hex=cmd.worker_id))
                if worker is not None:
                    state.worker_claimed(worker.pool, cmd.job_types, cmd.provider)

        return Answer(reply, then)

    return RpcServer(broker=broker, queue=broker.names.rpc_queue(JOB_API), handler=handle)


def watchdog_step(
    state: AppState,
    retention: timedelta,
    caught_up: Callable[[], Awaitable[bool]] | None = None,
) -> Callable[[], Awaitable[None]]:
    """Expire lapsed leases, re-offer stale pending jobs, prune the inbox.

    With `caught_up` (the events consumer's), leases are judged only once every report waiting in
    the events queue has been applied: after a deploy, a restart or a database outage longer than
    the lease, the heartbeats that arrived meanwhile renew the leases first, and a worker that
    kept heartbeating keeps its job.
    """
    last_prune = datetime.min.replace(tzinfo=UTC)

    async def step() -> None:
        nonlocal last_prune
        if caught_up is not None and not await caught_up():
            log.info("watchdog.waiting_for_reports")
            return
        now = datetime.now(UTC)
        while True:
            async with state.units.writing("watchdog") as uow:
                expired = await expire_leases(uow, now=now)
            LEASES_EXPIRED.inc(len(expired))
            if len(expired) < 100:
                break
        while True:
            async with state.units.writing("watchdog") as uow:
                offered = await redispatch_stale(uow, state.policy, now=now)
            if len(offered) < 100:
                break
        if now - last_prune > timedelta(hours=1):
            async with state.units.writing("watchdog") as uow:
                await INBOX.prune(uow.conn, retention)
            last_prune = now

    return step
