"""How a service describes itself to the app builder (`Service`), and what the builder builds for
it at start-up (`Platform`).

A service's `entrypoints/app.py` is then a table of contents: its routers, how its state is built
from the platform, its events (outbox, consumer) and any other background work.
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from messaging.broker import Broker
from messaging.consumer import Handler, InboxConsumer
from messaging.inbox import Inbox
from messaging.outbox import OutboxRelay
from messaging.topology import QueueSpec
from servicekit.auth import JwtVerifier
from servicekit.background import Background
from servicekit.config import PlatformSettings
from servicekit.uow import Database, Units


class ServiceState(Protocol):
    """What the builder needs of a service's own state: how its entry points open their unit of
    work (the request dependencies of servicekit.deps use it)."""

    @property
    def units(self) -> Units[Any]: ...


S = TypeVar("S", bound=ServiceState)
ErrorHandler = Callable[[Request, Exception], Response | Awaitable[Response]]


@dataclass
class Platform:
    """Built by the lifespan for every service (never at import time) and kept as
    `app.state.platform`: the database with its admission pools, the broker connection, the user
    token verifier, and the relay and consumer when this process runs them."""

    name: str
    settings: PlatformSettings
    db: Database
    broker: Broker
    verifier: JwtVerifier
    verify_in_loop: bool
    relay: OutboxRelay | None = None
    consumer: InboxConsumer | None = None


@dataclass(frozen=True)
class Events:
    """A service's side of the events. `outbox`: the table the relay publishes from (its trigger
    NOTIFYs `outbox_channel`), relayed unless `run_relay` is off. `consumer`: the consumer of the
    service's queue, recording processed ids in `inbox` (pruned hourly), run unless
    `run_consumers` is off."""

    outbox: sa.Table
    outbox_channel: str
    inbox: Inbox | None = None
    consumer: Callable[[Platform, Any], InboxConsumer] | None = None


def own_queue(service: str, bindings: Sequence[str]) -> Callable[[Broker], list[QueueSpec]]:
    """`Service.queues` of a service with one queue of its own (`service_queue(service)`), bound
    to the events exchange with `bindings`."""

    def queues(broker: Broker) -> list[QueueSpec]:
        return [QueueSpec(name=broker.names.service_queue(service), bindings=tuple(bindings))]

    return queues


def own_queue_consumer(
    platform: Platform,
    state: ServiceState,
    handler: Handler,
    *,
    inbox: Inbox,
    on_committed: Callable[[object], None] | None = None,
) -> InboxConsumer:
    """The consumer of the service's own queue (named after `inbox.consumer`, see `own_queue`):
    each batch is one transaction in the `consumer` pool, its event ids recorded in `inbox`;
    `on_committed` gets what `handler` returned once that transaction has committed."""
    broker = platform.broker
    return InboxConsumer(
        broker=broker,
        queue=broker.names.service_queue(inbox.consumer),
        begin=state.units.begin("consumer"),
        inbox=inbox,
        handler=handler,
        on_committed=on_committed,
    )


def _no_queues(_broker: Broker) -> Sequence[QueueSpec]:
    return ()


def _no_background(_platform: Platform, _state: Any) -> Iterable[Background]:
    return ()


def _nothing_to_say(_state: Any) -> Mapping[str, object]:
    return {}


@dataclass(frozen=True)
class Service(Generic[S]):
    """A service as the app builder sees it.

    - `name` names the app, its database sessions, its broker connection and its log lines.
    - `start(platform)` builds the service's own state once the platform is up (kept as
      `app.state.service`); `stop(state)` releases what it holds.
    - `pools`: the admission pools of its background work (`consumer`, `rpc`...); HTTP requests
      get the rest of `db_pool_size`.
    - `queues(broker)`: the queues it declares at start-up (with the core topology).
    - `background(platform, state)`: work beyond the relay and the consumer (a watchdog...);
      called once these are built (`platform.relay`, `platform.consumer`, None where this
      process runs neither), so that work may use them.
    - `max_body_bytes`: larger request bodies are refused with 413 before any route runs.
    - `json_body_exempt`: None if the service takes no JSON bodies; else the path prefixes whose
      bodies need not be JSON (uploads), every other body must be.
    - `error_handlers`: exceptions of its own that are not DomainErrors.
    - `openapi(document)`: amends the generated OpenAPI document.
    - `describe(state)`: fields for the `service.started` log line.
    """

    name: str
    description: str
    routers: Sequence[APIRouter]
    start: Callable[[Platform], Awaitable[S]]
    max_body_bytes: int
    stop: Callable[[S], Awaitable[None]] | None = None
    pools: Mapping[str, int] = field(default_factory=dict)
    queues: Callable[[Broker], Sequence[QueueSpec]] = _no_queues
    events: Events | None = None
    background: Callable[[Platform, S], Iterable[Background]] = _no_background
    json_body_exempt: tuple[str, ...] | None = None
    error_handlers: Mapping[type[Exception], ErrorHandler] = field(default_factory=dict)
    openapi: Callable[[dict[str, Any]], None] | None = None
    describe: Callable[[S], Mapping[str, object]] = _nothing_to_say
