"""Riding out outages (issue 5, section 3), each reproduction as a test.

- PostgreSQL unreachable for 30 s while a worker reports (this module's PostgreSQL, one the test
  may take away: killed and started again, tests/support/disposable.py): nothing dead-lettered,
  nothing lost, the job finishes on attempt 1.
- job-api stopped for twice the lease while its worker keeps heartbeating (a deploy): the
  heartbeats that waited in the queue are applied before any lease is judged: same attempt, no
  stop notice.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from job_api_testing import WORKER_HEADERS, eventually, job_body, running_app, user_headers
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.enums import ModelStore
from contracts.events import JobCancelRequested, JobProgress, ModelPushed
from contracts.rpc import JobSpec
from job_api.entrypoints.cli import migrate
from workerlink.link import BrokerLink

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"


@pytest.fixture(scope="module")
async def outage_postgres(killable_postgres: Any) -> AsyncIterator[Any]:
    async with killable_postgres() as server:
        yield server


@pytest.fixture(scope="module")
async def database_url(outage_postgres: Any) -> AsyncIterator[str]:
    """This module's job-api database, on a PostgreSQL a test may take away."""
    async with outage_postgres.database(schema="jobs", migrate=migrate) as url:
        yield url


@pytest.fixture
async def postgres(outage_postgres: Any) -> AsyncIterator[Any]:
    yield outage_postgres
    await outage_postgres.start()  # up for the next test, whatever this one did


async def create_job(client: httpx.AsyncClient, **overrides: Any) -> str:
    response = await client.post(JOBS, json=job_body(**overrides), headers=user_headers())
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


async def get_job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"{JOBS}/{job_id}", headers=user_headers())
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def history(client: httpx.AsyncClient, job_id: str, kind: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"{JOBS}/{job_id}/events", params={"kind": kind, "limit": 200}, headers=user_headers()
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


async def claim(worker: BrokerLink, job_id: str) -> JobSpec:
    offer = await worker.next_offer(timeout=15)
    assert str(offer.job_id) == job_id
    reply = await worker.claim(offer)
    assert reply.granted, reply
    assert reply.job is not None
    return reply.job


async def queue_depth(link: BrokerLink, queue: str) -> int:
    channel = await link.connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await channel.close()


class Heartbeats:
    """A worker reporting progress every `interval` seconds in the background, as a training
    loop does; counts what it sent."""

    def __init__(self, worker: BrokerLink, spec: JobSpec, interval: float) -> None:
        self._worker = worker
        self._spec = spec
        self._interval = interval
        # Each heartbeat carries its own step number. `tried` holds every step handed to the
        # broker; `sent` those the broker confirmed. A heartbeat cancelled mid-publish (when the
        # test stops the loop) is in `tried` only: it may or may not have reached the broker.
        self.tried: list[int] = []
        self.sent: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            step = len(self.tried) + 1
            self.tried.append(step)
            await self._worker.publish(
                JobProgress(
                    **self._worker.report_fields(self._spec),
                    progress=min(99.0, float(step)),
                    step=step,
                )
            )
            self.sent.append(step)
            await asyncio.sleep(self._interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["Heartbeats"]:
        self._task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def stop_notices(worker: BrokerLink) -> tuple[list[JobCancelRequested], Callable[..., None]]:
    heard: list[JobCancelRequested] = []
    return heard, heard.append


async def finish(
    client: httpx.AsyncClient, worker: BrokerLink, spec: JobSpec, job_id: str
) -> dict[str, Any]:
    await worker.publish(
        ModelPushed(
            **worker.report_fields(spec),
            repo_id="alice/custom-embedding",
            revision="after-outage",
            store=ModelStore.HUB,
            uri="hf://alice/custom-embedding@after-outage",
        )
    )

    async def completed() -> dict[str, Any] | None:
        job = await get_job(client, job_id)
        return job if job["status"] == "completed" else None

    found: dict[str, Any] = await eventually(completed, timeout=30)
    return found


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = 30) -> Any:
    return await eventually(check, timeout=timeout, interval=0.1)


@pytest.mark.timeout(240)
async def test_postgresql_unreachable_for_30_seconds_mid_stream(
    database_url: str, settings_factory: Any, make_worker: Any, db: AsyncEngine, postgres: Any
) -> None:
    settings = settings_factory(
        database_url=postgres.client_url(database_url),
        lease_seconds=5,
        watchdog_interval=0.2,
        presence_interval=1,
    )
    async with running_app(settings) as client:
        worker = await make_worker("w-steady")
        job_id = await create_job(client)
        spec = await claim(worker, job_id)
        heard, listen = stop_notices(worker)
        await worker.watch_cancel(spec.job_id, spec.attempt, listen)
        beats = Heartbeats(worker, spec, interval=0.5)
        async with beats.running():

            async def some_applied() -> bool:
                return (await get_job(client, job_id))["progress"] >= 2

            await wait_until(some_applied)
            await postgres.kill()
            outage_started = len(beats.sent)
            # 30 seconds without PostgreSQL, six leases long, while the worker reports on.
            await asyncio.sleep(30)
            assert len(beats.sent) > outage_started + 20
            await postgres.start()

            async def caught_up() -> bool:
                progress = (await get_job(client, job_id))["progress"]
                return bool(progress >= min(99.0, len(beats.sent) - 1))

            await wait_until(caught_up, timeout=60)
        sent, tried = list(beats.sent), list(beats.tried)
        job = await finish(client, worker, spec, job_id)
        assert job["attempt"] == 1
        steps = [r["data"]["step"] for r in await history(client, job_id, "progress")]
        assert len(steps) == len(set(steps)), "no heartbeat applied twice"
        assert set(sent) <= set(steps) <= set(tried), "every confirmed heartbeat applied"
        reasons = [r["data"]["reason"] for r in await history(client, job_id, "status")]
        assert "lease_expired" not in reasons
        assert heard == [], "the worker was never told to stop"
        dlq = worker.names.dead_letter_queue
        assert await queue_depth(worker, dlq) == 0, "nothing dead-lettered"


@pytest.mark.timeout(180)
async def test_job_api_stopped_for_twice_the_lease_keeps_a_heartbeating_worker(
    settings_factory: Any, make_worker: Any, db: AsyncEngine
) -> None:
    lease = 3.0
    settings = settings_factory(lease_seconds=lease, watchdog_interval=0.2)
    async with running_app(settings) as client:
        worker = await make_worker("w-steady")
        job_id = await create_job(client)
        canary = await create_job(client, output_model="alice/canary")
        spec = await claim(worker, job_id)
        # A second job whose worker is really gone: its requeue shows the watchdog has run.
        gone = await client.patch(
            f"{JOBS}/{canary}",
            json={"status": "running"},
            headers={**WORKER_HEADERS, "X-Worker-Id": "w-gone"},
        )
        assert gone.status_code == 200, gone.text
    heard, listen = stop_notices(worker)
    await worker.watch_cancel(spec.job_id, spec.attempt, listen)

    beats = Heartbeats(worker, spec, interval=0.3)
    async with beats.running():
        # job-api is down (a deploy): the reports wait in its queue.
        queue = worker.names.service_queue("job-api")

        async def downtime_passed() -> bool:
            return len(beats.sent) >= int(2 * lease / 0.3) + 2

        await wait_until(downtime_passed)
        assert await queue_depth(worker, queue) > 0
        async with running_app(settings) as client:

            async def canary_requeued() -> bool:
                return (await get_job(client, canary))["status"] == "pending"

            await wait_until(canary_requeued)
            job = await get_job(client, job_id)
            assert (job["status"], job["attempt"], job["worker_id"]) == (
                "running",
                1,
                worker.worker_id,
            )
            reasons = [r["data"]["reason"] for r in await history(client, job_id, "status")]
            assert "lease_expired" not in reasons
            assert heard == []
            job = await finish(client, worker, spec, job_id)
            assert job["attempt"] == 1
    assert uuid.UUID(job_id)
