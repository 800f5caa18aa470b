"""`writing` (servicekit's Units with job-api's after-commit step): what a unit of work leaves for
after its commit (a new job's events for the relay, the jobs it created, its counters) is handed
over once the unit committed and its connection went back, never when it rolled back."""

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from contracts.enums import GPUProvider, JobType
from job_api.adapters.fast_path import FreshJob, FreshJobs
from job_api.domain.job import Job
from job_api.entrypoints.deps import AppState, writing
from job_api.service_layer.unit_of_work import Caches, UnitOfWork
from servicekit.uow import Database, Units


class _Db:
    """Records when each kind of unit ends (commit and connection given back)."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    @contextlib.asynccontextmanager
    async def write_one_statement(self, pool: str = "http") -> AsyncIterator[object]:
        try:
            yield object()
        finally:
            self.events.append("connection given back")

    @contextlib.asynccontextmanager
    async def write(self, pool: str = "http") -> AsyncIterator[object]:
        try:
            yield object()
        except BaseException:
            self.events.append("rolled back, connection given back")
            raise
        self.events.append("committed, connection given back")


class _Relay:
    def __init__(self, events: list[str], *, accept: bool = True) -> None:
        self.events = events
        self.accept = accept

    def publish_now(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        self.events.append(f"publish_now({len(rows)})")
        return self.accept


class _State:
    def __init__(self, events: list[str], relay: _Relay | None) -> None:
        self.relay = relay
        self.fresh_jobs = FreshJobs()
        self.caches = Caches()
        self.units = Units(
            cast(Database, _Db(events)),
            lambda conn: UnitOfWork(conn, caches=self.caches),
            after_commit=lambda uow: AppState.committed(cast(AppState, self), uow),
        )


def _fresh() -> FreshJob:
    now = datetime.now(UTC)
    job = Job(
        id=uuid.uuid4(),
        user_id="alice",
        project_id=None,
        job_type=JobType.EMBEDDING,
        base_model="m",
        training_data_url="https://data.example.com/train.csv",
        dataset_id=None,
        output_model="alice/m",
        gpu_provider=GPUProvider.LOCAL,
        hyperparameters={},
        max_attempts=3,
        created_at=now,
        updated_at=now,
        dispatched_at=now,
    )
    return FreshJob(job=job, row_version="7")


async def _unit(state: _State, events: list[str], *, one_statement: bool, rows: int = 1) -> None:
    async with writing(cast(AppState, state), one_statement=one_statement) as uow:
        uow.new_subject_rows.extend({"id": i} for i in range(rows))
        uow.after_commit.append(lambda: events.append("counted"))
    events.append("response")


@pytest.mark.parametrize(
    ("one_statement", "ended"),
    [(True, "connection given back"), (False, "committed, connection given back")],
)
async def test_a_new_jobs_events_go_to_the_relay_once_committed_before_the_response(
    one_statement: bool, ended: str
) -> None:
    events: list[str] = []
    await _unit(_State(events, _Relay(events)), events, one_statement=one_statement)
    assert events == [ended, "publish_now(1)", "counted", "response"]


async def test_a_rolled_back_unit_hands_nothing_over() -> None:
    events: list[str] = []
    state = _State(events, _Relay(events))

    async def failing() -> None:
        async with writing(cast(AppState, state)) as uow:
            uow.new_subject_rows.append({"id": 1})
            uow.created.append(_fresh())
            uow.after_commit.append(lambda: events.append("counted"))
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await failing()
    assert events == ["rolled back, connection given back"]
    assert len(state.fresh_jobs) == 0


async def test_nothing_is_handed_over_twice_and_a_declining_relay_costs_nothing() -> None:
    events: list[str] = []
    state = _State(events, _Relay(events, accept=False))
    async with writing(cast(AppState, state), one_statement=True) as uow:
        uow.new_subject_rows.append({"id": 1})
        uow.created.append(_fresh())
    assert events == ["connection given back", "publish_now(1)"]
    assert uow.new_subject_rows == []
    assert len(state.fresh_jobs) == 1

    events.clear()
    await _unit(_State(events, _Relay(events)), events, one_statement=True, rows=0)
    assert events == ["connection given back", "counted", "response"]

    events.clear()
    await _unit(_State(events, None), events, one_statement=True)
    assert events == ["connection given back", "counted", "response"]
