"""Request dependencies: the unit of work (the request owns the transaction), the caller's identity,
the worker key, and the process-wide state built in the lifespan (servicekit's
`app.state.service`)."""

import asyncio
from collections.abc import Awaitable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from contracts.credentials import parse_token
from contracts.enums import GPUProvider, JobStatus, JobType, WorkerPool
from contracts.routing import SHARED_POOL
from job_api.adapters.broker_admin import BrokerAdmin
from job_api.adapters.fast_path import FreshJobs
from job_api.adapters.job_queries import PendingGroup
from job_api.domain.job import Job
from job_api.domain.worker import Worker
from job_api.entrypoints.live import LiveHub, StreamLimits
from job_api.entrypoints.presence import PresenceView
from job_api.entrypoints.schemas import WaitingNotice
from job_api.service_layer.unit_of_work import Caches, Policy, UnitOfWork
from job_api.service_layer.workers import Availability, authenticate
from messaging.broker import Broker
from messaging.consumer import InboxConsumer
from messaging.outbox import OutboxRelay
from servicekit.auth import JwtVerifier, Principal, bearer_token, check_worker_key
from servicekit.errors import ApiError
from servicekit.security import USER_BEARER
from servicekit.uow import Database, Units


@dataclass
class AppState:
    # Every entry point's transactions: HTTP routes, streams, consumer, RPC server, watchdog.
    db: Database
    policy: Policy
    verifier: JwtVerifier
    worker_key: str
    live: LiveHub
    stream_limits: StreamLimits = field(default_factory=lambda: StreamLimits(8, 2000))
    broker: Broker | None = None
    # This process's outbox relay (None when it runs elsewhere).
    relay: OutboxRelay | None = None
    # This process's event consumer (None when it runs elsewhere); its stats count applied,
    # duplicate (a redelivery the inbox recognised, acked) and dead-lettered events.
    consumer: InboxConsumer | None = None
    # Jobs this process just created, for the claim that usually follows within milliseconds.
    fresh_jobs: FreshJobs = field(default_factory=FreshJobs)
    # True when verifying a token needs no I/O (HS256): done on the event loop. Otherwise (RS256
    # may fetch the JWKS over HTTP) it runs in the thread pool.
    verify_in_loop: bool = False
    # What the hot paths remember for a few seconds (enrolled workers, owners without a linked
    # Hub token); revoking or linking in this process updates them at once.
    caches: Caches = field(default_factory=Caches)
    # Whether the brief's shared FINETUNE_WORKER_KEY opens the worker endpoints.
    shared_worker_key: bool = True
    # Broker users of enrolled workers (None: no management API configured).
    broker_admin: BrokerAdmin | None = None
    # What `/api/workers/me` tells a worker: the broker URL to dial and the names' prefix.
    worker_amqp_url: str | None = None
    broker_prefix: str = ""
    # How a Colab cell installs the worker (the "Add a worker" setup).
    worker_install: str = ""
    # What the presence monitor last read of the worker registry (set up in __post_init__).
    presence: PresenceView = field(init=False)
    # Every entry point's units of work (routes, consumer, claims, streams, watchdog), and the
    # claim's optimistic ones (no lock, one checked save: UnitOfWork).
    units: Units[UnitOfWork] = field(init=False)
    claims: Units[UnitOfWork] = field(init=False)
    # When (event-loop time) a claim last proved a worker of each (pool, job type, provider;
    # None for a private pool's any provider): a presence reading that began before it cannot
    # say such jobs have nobody (its read may predate the worker's arrival or its claim).
    claimed_at: dict[tuple[str, JobType, GPUProvider | None], float] = field(default_factory=dict)

    def worker_claimed(
        self, pool: str, job_types: Iterable[JobType], provider: GPUProvider
    ) -> None:
        now = asyncio.get_running_loop().time()
        for job_type in job_types:
            self.claimed_at[(pool, job_type, provider if pool == SHARED_POOL else None)] = now

    def claimed_since(self, group: PendingGroup, started: float) -> bool:
        pool, owner, job_type, provider = group
        keys: list[tuple[str, JobType, GPUProvider | None]] = []
        if pool is not WorkerPool.PRIVATE:
            keys.append((SHARED_POOL, job_type, provider))
        if pool is not WorkerPool.SHARED and owner is not None:
            keys.append((owner, job_type, None))
        return any(self.claimed_at.get(key, float("-inf")) >= started for key in keys)

    def waiting(self, job: Job) -> WaitingNotice | None:
        """A pending job's notice (why it waits, what starts a worker); None before the first
        presence reading, or for a job that is not pending."""
        if job.status is not JobStatus.PENDING:
            return None
        return self.presence.notice(job)

    def availability(self, group: PendingGroup) -> Availability | None:
        """Who could take a group's jobs, from the last presence reading (None before one)."""
        return self.presence.availability(group)

    def __post_init__(self) -> None:
        self.presence = PresenceView(
            online=self.policy.worker_online, public_base_url=self.policy.public_base_url
        )
        self.units = Units(
            self.db, lambda conn: UnitOfWork(conn, caches=self.caches), after_commit=self.committed
        )
        self.claims = Units(
            self.db,
            lambda conn: UnitOfWork(
                conn, optimistic=True, fresh=self.fresh_jobs, caches=self.caches
            ),
            after_commit=self.committed,
        )

    async def committed(self, uow: UnitOfWork) -> None:
        """What a unit of work leaves for after its commit: a new job's events go to the relay at
        once (it would otherwise wait for the outbox's NOTIFY and its read), the jobs it created
        are remembered for their claim, and its counters count."""
        if uow.new_subject_rows and self.relay is not None:
            rows, uow.new_subject_rows = uow.new_subject_rows, []
            self.relay.publish_now(rows)
        for fresh in uow.created:
            self.fresh_jobs.remember(fresh)
        for hook in uow.after_commit:
            hook()


# Dependencies are `async def` unless they block: FastAPI runs a plain `def` dependency in its
# thread pool, a hop per dependency per request that costs more than the work under load.
async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.service
    return state


StateDep = Annotated[AppState, Depends(get_state)]


# A route opens its unit of work in its body (`async with writing(state) as uow:`), never through
# a `yield` dependency: the block ends, and the transaction commits (or the read connection goes
# back), before the route returns, so a 2xx always means committed and a failed commit is an error
# response. (A function-scoped `yield` dependency would do the same, at a cost per request of
# FastAPI's exit-stack machinery larger than the whole primary-key read.)
def writing(
    state: AppState, *, one_statement: bool = False
) -> AbstractAsyncContextManager[UnitOfWork]:
    """The routes' unit of work (`Units.writing` on the `http` pool)."""
    return state.units.writing(one_statement=one_statement)


def reading(state: AppState) -> AbstractAsyncContextManager[UnitOfWork]:
    return state.units.reading()


# The security schemes of the OpenAPI document (the Authorize button of /docs): the users'
# (servicekit's, as every service declares it) and the workers'. The checks themselves are ours
# (below): these only read the header (auto_error off).
WORKER_BEARER = HTTPBearer(
    scheme_name="workerKey",
    description=(
        "An enrolled worker's token (`ftdw_...`, from POST /api/workers), or in development the "
        "workers' shared key (FINETUNE_WORKER_KEY)."
    ),
    auto_error=False,
)


def _verify(state: AppState, token: str | None) -> Principal | Awaitable[Principal]:
    if token is None:
        raise ApiError(401, "unauthorized", "Send a user token as `Authorization: Bearer <JWT>`.")
    if state.verify_in_loop:
        return state.verifier.verify(token)
    return run_in_threadpool(state.verifier.verify, token)


async def current_user(
    request: Request,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(USER_BEARER)],
) -> Principal:
    # The state straight from the app, not through a dependency: one less to solve per request.
    principal = _verify(
        request.app.state.service, bearer_token(request.headers.get("authorization"))
    )
    return principal if isinstance(principal, Principal) else await principal


async def current_stream_user(
    request: Request,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(USER_BEARER)],
    access_token: Annotated[
        str | None,
        Query(
            description="For EventSource clients, which cannot send headers.",
            include_in_schema=False,
        ),
    ] = None,
) -> Principal:
    """As current_user, and the token may come as `access_token` in the query (only streams
    accept it: EventSource cannot send headers)."""
    token = bearer_token(request.headers.get("authorization")) or access_token or None
    principal = _verify(request.app.state.service, token)
    return principal if isinstance(principal, Principal) else await principal


UserDep = Annotated[Principal, Depends(current_user)]
StreamUserDep = Annotated[Principal, Depends(current_stream_user)]


@dataclass(frozen=True)
class WorkerCaller:
    """Who calls a worker endpoint: an enrolled worker (its credential), or, where it is allowed,
    the holder of the shared key (one identity for all of them)."""

    holder: str
    pool: str
    worker: Worker | None = None


SHARED_KEY_HOLDER = "shared-key"


async def current_worker(
    request: Request,
    state: StateDep,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(WORKER_BEARER)],
) -> WorkerCaller:
    token = bearer_token(request.headers.get("authorization"))
    if token and parse_token(token) is not None:
        async with reading(state) as uow:
            worker = await authenticate(uow, token)
        return WorkerCaller(holder=worker.id.hex, pool=worker.pool, worker=worker)
    if token and not state.shared_worker_key:
        raise ApiError(
            403,
            "invalid_worker_key",
            "The shared worker key is turned off here: enroll the worker (POST /api/workers) "
            "and send its own token.",
        )
    check_worker_key(token, state.worker_key)
    return WorkerCaller(holder=SHARED_KEY_HOLDER, pool=SHARED_POOL)


WorkerCallerDep = Annotated[WorkerCaller, Depends(current_worker)]


def scope(principal: Principal) -> str | None:
    """The user id every query is scoped to; None for an admin (all users)."""
    return None if principal.is_admin else principal.user_id
