"""`writing`: when a unit of work's new-job events leave, relative to its commit and to giving
its connection back (the broker half of dispatch latency)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, cast

from job_api.adapters.fast_path import FreshJobs
from job_api.entrypoints.deps import AppState, writing
from job_api.service_layer.unit_of_work import Caches


class _Db:
    """Records when each kind of unit ends (commit and connection given back)."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    @contextlib.asynccontextmanager
    async def write_one_statement(self, pool: str = "http") -> AsyncIterator[object]:
        yield object()
        self.events.append("connection given back")

    @contextlib.asynccontextmanager
    async def write(self, pool: str = "http") -> AsyncIterator[object]:
        yield object()
        self.events.append("committed, connection given back")


class _Relay:
    """publish_now starts a task that queues the frames; a writer writes them a turn later, as
    aiormq's writer task does."""

    def __init__(self, events: list[str], *, accept: bool = True) -> None:
        self.events = events
        self.accept = accept
        self.tasks: list[asyncio.Task[None]] = []

    def publish_now(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        self.events.append(f"publish_now({len(rows)})")
        if not self.accept:
            return False

        async def publish() -> None:
            self.events.append("frames queued")
            asyncio.get_running_loop().call_soon(self.events.append, "frames written")

        self.tasks.append(asyncio.create_task(publish()))
        return True


class _State:
    def __init__(self, events: list[str], relay: _Relay | None) -> None:
        self.db = _Db(events)
        self.relay = relay
        self.fresh_jobs = FreshJobs()
        self.caches = Caches()


async def _unit(state: _State, *, one_statement: bool, rows: int = 1) -> None:
    async with writing(cast(AppState, state), one_statement=one_statement) as uow:
        uow.new_subject_rows.extend({"id": i} for i in range(rows))
    state.db.events.append("response")


async def test_a_one_statement_write_sends_its_new_job_events_before_giving_its_connection_back() -> (
    None
):
    events: list[str] = []
    relay = _Relay(events)
    await _unit(_State(events, relay), one_statement=True)
    assert events == [
        "publish_now(1)",
        "frames queued",
        "frames written",
        "connection given back",
        "response",
    ]


async def test_a_transaction_publishes_only_after_its_commit_and_still_before_the_response() -> (
    None
):
    events: list[str] = []
    await _unit(_State(events, _Relay(events)), one_statement=False)
    assert events == [
        "committed, connection given back",
        "publish_now(1)",
        "frames queued",
        "frames written",
        "response",
    ]


async def test_nothing_is_published_twice_and_nothing_waits_when_the_relay_declines() -> None:
    events: list[str] = []
    relay = _Relay(events, accept=False)
    await _unit(_State(events, relay), one_statement=True)
    assert events == ["publish_now(1)", "connection given back", "response"]

    events.clear()
    await _unit(_State(events, _Relay(events)), one_statement=True, rows=0)
    assert events == ["connection given back", "response"]
