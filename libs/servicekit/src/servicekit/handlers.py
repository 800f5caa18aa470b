"""A typed registry of event handlers: each event type maps to the one function that applies it,
instead of an `isinstance` chain in every consumer.

    handlers: EventHandlers[Context] = EventHandlers()

    @handlers.on(JobCreated)
    async def job_created(context: Context, event: JobCreated) -> None: ...

    handled = await handlers.dispatch(context, payload)   # False: no handler takes it

`on(kind)` types the handler's event as `kind`, so a handler needs no `isinstance` check or
`assert`; `dispatch` looks the event's class up, then its bases (most specific first), so one
handler can take a family of events. `C` is whatever the handlers share (a unit of work, the
settings they need, what they report back).
"""

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

C = TypeVar("C")
E = TypeVar("E")

Handler = Callable[[C, E], Awaitable[None]]


class EventHandlers(Generic[C]):
    def __init__(self) -> None:
        # Any: each entry's event type is its key's, which `on` checked when it was added.
        self._handlers: dict[type[Any], Handler[C, Any]] = {}

    def on(self, kind: type[E]) -> Callable[[Handler[C, E]], Handler[C, E]]:
        """Register the decorated function as the handler of `kind` (one handler a type)."""

        def register(handler: Handler[C, E]) -> Handler[C, E]:
            if kind in self._handlers:
                raise ValueError(f"{kind.__name__} already has a handler")
            self._handlers[kind] = handler
            return handler

        return register

    @property
    def kinds(self) -> tuple[type[Any], ...]:
        """The event types with a handler, in the order they were registered."""
        return tuple(self._handlers)

    def handler_for(self, event: object) -> Handler[C, Any] | None:
        for kind in type(event).__mro__:
            handler = self._handlers.get(kind)
            if handler is not None:
                return handler
        return None

    async def dispatch(self, context: C, event: object) -> bool:
        """Apply `event` with its handler; False (and nothing done) when none takes it."""
        handler = self.handler_for(event)
        if handler is None:
            return False
        await handler(context, event)
        return True
