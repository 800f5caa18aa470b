from dataclasses import dataclass, field
from uuid import uuid4

import pytest
import structlog

from contracts.enums import CancelReason
from contracts.events import Envelope, EventPayload, JobCancelRequested, traced
from messaging.received import Received
from servicekit.handlers import EventHandlers


@dataclass
class Created:
    name: str


@dataclass
class Renamed:
    old: str
    new: str


@dataclass
class Archived:
    name: str


@dataclass
class ArchivedForever(Archived):
    pass


@dataclass
class Seen:
    lines: list[str] = field(default_factory=list)


handlers: EventHandlers[Seen, object] = EventHandlers()


@handlers.on(Created)
async def created(seen: Seen, event: Created) -> None:
    seen.lines.append(f"created {event.name}")


@handlers.on(Renamed)
async def renamed(seen: Seen, event: Renamed) -> None:
    seen.lines.append(f"renamed {event.old} to {event.new}")


@handlers.on(Archived)
async def archived(seen: Seen, event: Archived) -> None:
    seen.lines.append(f"archived {event.name} ({type(event).__name__})")


async def test_each_event_goes_to_the_handler_of_its_type() -> None:
    seen = Seen()
    for event in (Created("a"), Renamed("a", "b"), ArchivedForever("b")):
        assert await handlers.dispatch(seen, event)
    assert seen.lines == ["created a", "renamed a to b", "archived b (ArchivedForever)"]
    assert handlers.kinds == (Created, Renamed, Archived)


async def test_an_event_without_a_handler_is_left_alone() -> None:
    seen = Seen()
    assert not await handlers.dispatch(seen, "not an event")
    assert handlers.handler_for(object()) is None
    assert seen.lines == []


def test_a_type_gets_one_handler() -> None:
    with pytest.raises(ValueError, match="Created already has a handler"):

        @handlers.on(Created)
        async def again(seen: Seen, event: Created) -> None:
            pass


async def test_a_batch_is_applied_event_by_event_within_each_events_trace() -> None:
    written: list[tuple[Envelope, dict[str, object]]] = []
    traced_handlers: EventHandlers[None, EventPayload] = EventHandlers()

    @traced_handlers.on(JobCancelRequested)
    async def cancel(_: None, event: JobCancelRequested) -> None:
        # What a handler writes now is caused by the event it handles.
        written.append(
            (Envelope.wrap(event, source="test"), structlog.contextvars.get_contextvars())
        )

    def received(correlation: str) -> Received:
        event = JobCancelRequested(job_id=uuid4(), reason=CancelReason.USER)
        with traced(correlation, correlation):
            return Received(Envelope.wrap(event, source="test"), event)

    batch = [received("req-a"), received("req-b")]
    heartbeat = Received(batch[0].envelope, Created("not an event payload"))  # type: ignore[arg-type]
    assert await traced_handlers.apply_each(None, [*batch, heartbeat]) == [heartbeat]
    for (envelope, bound), cause in zip(written, batch, strict=True):
        assert envelope.correlation_id == cause.envelope.correlation_id
        assert envelope.causation_id == str(cause.envelope.id)
        assert bound == {
            "event_id": str(cause.envelope.id),
            "correlation_id": cause.envelope.correlation_id,
            "causation_id": cause.envelope.correlation_id,
        }
    assert structlog.contextvars.get_contextvars() == {}
