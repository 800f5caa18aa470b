"""A typed registry of event handlers: each event type maps to the one function that applies it,
instead of an `isinstance` chain in every consumer.

    handlers: EventHandlers[Context, EventPayload] = EventHandlers()

    @handlers.on(JobCreated)
    async def job_created(context: Context, event: JobCreated) -> None: ...

    handled = await handlers.dispatch(context, payload)   # False: no handler takes it
    ignored = await handlers.apply_each(context, batch)    # a consumer's batch, each traced

`on(kind)` types the handler's event as `kind`, so a handler needs no `isinstance` check or
`assert`; `dispatch` looks the event's class up, then its bases (most specific first), so one
handler can take a family of events. `C` is whatever the handlers share (a unit of work, the
settings they need, what they report back); `E` the family of events they take (a consumer's
`EventPayload`, or a service's own kinds of command).
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

from contracts.events import EventPayload
from messaging.received import Received

C = TypeVar("C")
E = TypeVar("E")
K = TypeVar("K")

Handler = Callable[[C, K], Awaitable[None]]


class EventHandlers(Generic[C, E]):
    def __init__(self) -> None:
        # Any: each entry's event type is its key's, which `on` checked when it was added.
        self._handlers: dict[type[Any], Handler[C, Any]] = {}

    def on(self, kind: type[K]) -> Callable[[Handler[C, K]], Handler[C, K]]:
        """Register the decorated function as the handler of `kind` (one handler a type)."""

        def register(handler: Handler[C, K]) -> Handler[C, K]:
            if kind in self._handlers:
                raise ValueError(f"{kind.__name__} already has a handler")
            self._handlers[kind] = handler
            return handler

        return register

    @property
    def kinds(self) -> tuple[type[Any], ...]:
        """The event types with a handler, in the order they were registered."""
        return tuple(self._handlers)

    def handler_for(self, event: E) -> Handler[C, Any] | None:
        for kind in type(event).__mro__:
            handler = self._handlers.get(kind)
            if handler is not None:
                return handler
        return None

    def handles(self, event: E) -> bool:
        return self.handler_for(event) is not None

    async def dispatch(self, context: C, event: E) -> bool:
        """Apply `event` with its handler; False (and nothing done) when none takes it."""
        handler = self.handler_for(event)
        if handler is None:
            return False
        await handler(context, event)
        return True

    async def apply_each(
        self: "EventHandlers[C, EventPayload]", context: C, batch: Iterable[Received]
    ) -> list[Received]:
        """Dispatch a consumer's events one by one, each within its trace (`Received.handling`:
        what it writes carries its correlation id, the log lines name it). Returns the events
        no handler takes."""
        ignored: list[Received] = []
        for received in batch:
            handler = self.handler_for(received.payload)
            if handler is None:
                ignored.append(received)  # no trace entered: nothing is applied
                continue
            with received.handling():
                await handler(context, received.payload)
        return ignored
