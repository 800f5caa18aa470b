from dataclasses import dataclass, field

import pytest

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


handlers: EventHandlers[Seen] = EventHandlers()


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
