"""The claim's optimistic path (entrypoints/workers.claim_holding): the job is read without a
lock and saved, with its events and history, by one statement that applies only if the row is the
version that was read. A lost race writes nothing and the claim says it needs the row lock (no
exception), then runs again under it; a claim that needs another write says so before writing
anything; the save wakes live streams."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from job_api_testing import enroll_worker, job_body, served_app, user_headers

from contracts.enums import GPUProvider, JobType
from contracts.rpc import ClaimJob, ClaimRefusal, ClaimReply
from job_api.adapters import fast_path
from job_api.adapters.jobs import JobRepository, NotOptimistic
from job_api.adapters.tables import JOB_EVENTS_CHANNEL
from job_api.config import Settings
from job_api.entrypoints import workers
from job_api.entrypoints.workers import claim_holding
from job_api.service_layer.dispatch import claim_job
from servicekit.db import asyncpg_dsn
from workerlink.identity import WorkerIdentity

pytestmark = pytest.mark.integration

ALICE = user_headers("alice")


# The enrolled worker every claim here is signed by (enrolled afresh for each test).
W1: list[WorkerIdentity] = []


@pytest.fixture(autouse=True)
async def w1(db: Any) -> None:
    W1[:] = [await enroll_worker(db, name="w1")]


def _claim(job_id: str, *, claim_id: uuid.UUID | None = None) -> ClaimJob:
    identity = W1[0]
    return ClaimJob(
        job_id=uuid.UUID(job_id),
        worker_id=identity.worker_id,
        claim_id=claim_id or uuid.uuid4(),
        provider=GPUProvider.LOCAL,
        job_types=[JobType.EMBEDDING],
        expires_at=datetime.now(UTC) + timedelta(seconds=30),
    ).signed(identity.key)


async def claim(state: Any, cmd: ClaimJob) -> ClaimReply:
    """A claim answered as the RPC server answers it, its connection given back at once."""
    reply, release = await claim_holding(state, cmd)
    await release()
    return reply


async def _counts(db: Any, job_id: str) -> dict[str, Any]:
    async with db.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM jobs.outbox) AS outbox,"
                    " (SELECT count(*) FROM jobs.job_events WHERE job_id = :id) AS history,"
                    " (SELECT status FROM jobs.jobs WHERE id = :id) AS status,"
                    " (SELECT attempt FROM jobs.jobs WHERE id = :id) AS attempt,"
                    " (SELECT last FROM jobs.outbox_sequences WHERE subject = CAST(:id AS text)) AS sequence"
                ),
                {"id": job_id},
            )
        ).one()
    return dict(row._mapping)


async def _new_job(client: Any) -> str:
    created = await client.post("/api/finetune/jobs", json=job_body(), headers=ALICE)
    assert created.status_code == 201, created.text
    return str(created.json()["data"]["id"])


def _quiet(settings_factory: Callable[..., Settings]) -> Settings:
    # No relay (the outbox keeps what was staged, to be counted), no consumers, and no watchdog
    # or presence monitor (which may mark a pending job `no_worker` while a test counts rows).
    return settings_factory(
        access_log=False, run_relay=False, run_consumers=False, run_watchdog=False
    )


async def test_a_claim_that_loses_a_race_writes_nothing_and_is_decided_under_the_lock(
    settings_factory: Callable[..., Settings], db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with served_app(_quiet(settings_factory)) as (client, app):
        state = app.state.service
        job_id = await _new_job(client)
        before = await _counts(db, job_id)

        # Between the optimistic read and its save, another writer touches the row: a no-op
        # UPDATE, which changes no value but is a new version of the row all the same.
        real_get = JobRepository.get

        async def get_then_race(self: JobRepository, *args: Any, **kwargs: Any) -> Any:
            job = await real_get(self, *args, **kwargs)
            if kwargs.get("for_update") and self._optimistic:
                async with db.begin() as other:
                    await other.execute(
                        sa.text("UPDATE jobs.jobs SET phase = phase WHERE id = :id"), {"id": job_id}
                    )
            return job

        monkeypatch.setattr(JobRepository, "get", get_then_race)
        async with state.claims.writing("rpc", one_statement=True) as uow:
            lost = await claim_job(uow, _claim(job_id), state.policy, now=datetime.now(UTC))
        assert lost is None, "a lost race is decided under the lock"
        assert await _counts(db, job_id) == before, "a lost race wrote something"

        # Through the entry point: the race is lost again, and the locking retry grants it.
        reply = await claim(state, _claim(job_id))
        assert reply.granted
        assert reply.job is not None
        assert reply.job.attempt == 1
        after = await _counts(db, job_id)
        assert (after["status"], after["attempt"]) == ("running", 1)
        # One claim's events (status_changed + job.claimed) and one history row, once.
        assert after["outbox"] == before["outbox"] + 2
        assert after["history"] == before["history"] + 1
        assert after["sequence"] == before["sequence"] + 2


async def test_the_optimistic_claim_saves_once_and_wakes_live_streams(
    settings_factory: Callable[..., Settings], db: Any, database_url: str
) -> None:
    listener = await asyncpg.connect(asyncpg_dsn(database_url))
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(JOB_EVENTS_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    try:
        async with served_app(_quiet(settings_factory)) as (client, app):
            state = app.state.service
            job_id = await _new_job(client)
            assert await asyncio.wait_for(heard.get(), 5) == f"{job_id}:alice"
            before = await _counts(db, job_id)

            reply = await claim(state, _claim(job_id))
            assert reply.granted
            assert await asyncio.wait_for(heard.get(), 5) == f"{job_id}:alice"
            after = await _counts(db, job_id)
            assert (after["status"], after["attempt"]) == ("running", 1)
            assert after["outbox"] == before["outbox"] + 2
            assert after["history"] == before["history"] + 1

            # A second claim (another claim id) is refused and writes nothing.
            refused = await claim(state, _claim(job_id))
            assert refused.refusal is ClaimRefusal.NOT_PENDING
            assert await _counts(db, job_id) == after
    finally:
        await listener.close()


async def test_a_claim_that_needs_another_write_leaves_optimistic_mode_before_writing(
    settings_factory: Callable[..., Settings], db: Any
) -> None:
    """A retried claim (same claim id, its reply was lost) rotates the claim secret with a plain
    save: the claim says it needs the lock before writing, and the entry point's locking run grants
    the same attempt again."""
    async with served_app(_quiet(settings_factory)) as (client, app):
        state = app.state.service
        job_id = await _new_job(client)
        claim_id = uuid.uuid4()
        first = await claim(state, _claim(job_id, claim_id=claim_id))
        assert first.granted
        assert first.job is not None
        granted = await _counts(db, job_id)

        async with state.claims.writing("rpc", one_statement=True) as uow:
            retried = await claim_job(
                uow, _claim(job_id, claim_id=claim_id), state.policy, now=datetime.now(UTC)
            )
        assert retried is None, "a retried claim is decided under the lock"
        assert await _counts(db, job_id) == granted

        again = await claim(state, _claim(job_id, claim_id=claim_id))
        assert again.granted
        assert again.job is not None
        assert again.job.attempt == first.job.attempt == 1
        assert again.job.claim_secret != first.job.claim_secret


async def test_optimistic_mode_allows_one_checked_save_and_nothing_else(
    settings_factory: Callable[..., Settings], db: Any
) -> None:
    async with served_app(_quiet(settings_factory)) as (client, app):
        state = app.state.service
        job_id = await _new_job(client)
        before = await _counts(db, job_id)
        async with state.claims.writing("rpc", one_statement=True) as uow:
            job = await uow.jobs.get(uuid.UUID(job_id), for_update=True)
            assert job is not None
            for write in (
                lambda: uow.jobs.save(job),
                lambda: uow.jobs.save_many([job]),
                lambda: uow.jobs.get_many_for_update([job.id]),
                lambda: uow.publish(),
                lambda: uow.datasets.mark_deleted(uuid.uuid4(), "alice"),
                lambda: uow.jobs.get(job.id, user_id="alice", for_update=True),
            ):
                with pytest.raises(NotOptimistic):
                    await write()
            with pytest.raises(NotOptimistic):
                uow.events  # noqa: B018 - the property refuses
            with pytest.raises(NotOptimistic):
                uow.idempotency  # noqa: B018
        assert await _counts(db, job_id) == before


class _CountingRead:
    """Wraps the claim's versioned read to count the times it reaches the database."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    async def fetchrow(self, conn: Any, params: dict[str, Any]) -> Any:
        self.calls += 1
        return await self.real.fetchrow(conn, params)


async def test_a_claim_on_the_process_that_created_the_job_skips_the_read(
    settings_factory: Callable[..., Settings], db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _CountingRead(fast_path.GET_JOB_VERSIONED)
    monkeypatch.setattr(fast_path, "GET_JOB_VERSIONED", reads)
    async with served_app(_quiet(settings_factory)) as (client, app):
        state = app.state.service
        job_id = await _new_job(client)
        assert len(state.fresh_jobs) == 1
        reply = await claim(state, _claim(job_id))
        assert reply.granted
        assert reply.job is not None
        assert reply.job.attempt == 1
        assert reads.calls == 0, "the version written by the POST was used"
        assert len(state.fresh_jobs) == 0, "an entry is used once"
        after = await _counts(db, job_id)
        assert (after["status"], after["attempt"], after["sequence"]) == ("running", 1, 4)

        # A job this process did not create (another replica's): read as before.
        other = await _new_job(client)
        assert state.fresh_jobs.take(uuid.UUID(other)) is not None
        assert (await claim(state, _claim(other))).granted
        assert reads.calls == 1


async def test_a_fresh_entry_for_a_job_changed_since_writes_nothing_and_the_lock_decides(
    settings_factory: Callable[..., Settings], db: Any
) -> None:
    async with served_app(_quiet(settings_factory)) as (client, app):
        state = app.state.service
        job_id = await _new_job(client)
        cancelled = await client.delete(f"/api/finetune/jobs/{job_id}", headers=ALICE)
        assert cancelled.status_code == 200
        before = await _counts(db, job_id)
        assert len(state.fresh_jobs) == 1, "the entry still says pending"
        reply = await claim(state, _claim(job_id))
        assert reply.refusal is ClaimRefusal.NOT_PENDING
        assert await _counts(db, job_id) == before


async def test_a_write_after_the_checked_save_is_a_bug_not_a_retry(
    settings_factory: Callable[..., Settings], db: Any
) -> None:
    """Once the checked save has committed, running the handler again under the lock would apply
    it twice: a further write is refused (NotOptimistic, a bug), and never retried."""
    async with served_app(_quiet(settings_factory)) as (client, app):
        state = app.state.service
        job_id = await _new_job(client)
        async with state.claims.writing("rpc", one_statement=True) as uow:
            reply = await claim_job(uow, _claim(job_id), state.policy, now=datetime.now(UTC))
            assert reply is not None
            assert reply.granted
            granted = await _counts(db, job_id)
            job = await uow.jobs.get(uuid.UUID(job_id), for_update=False)
            assert job is not None
            with pytest.raises(NotOptimistic):
                await uow.jobs.save(job)
        assert await _counts(db, job_id) == granted


async def test_the_optimistic_claim_is_committed_before_its_connection_goes_back(
    settings_factory: Callable[..., Settings], db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The RPC server sends the reply, then calls `release`: the claim must already be visible
    to everyone while the connection is still held, and the held slot must come back. A claim
    decided under the lock has given its connection back already."""
    async with served_app(_quiet(settings_factory)) as (client, app):
        state = app.state.service
        slots = state.db.pools["rpc"]
        job_id = await _new_job(client)
        reply, release = await claim_holding(state, _claim(job_id))
        assert reply.granted
        assert slots.in_use == 1, "held until the reply is sent"
        held = await _counts(db, job_id)
        assert (held["status"], held["attempt"]) == ("running", 1), "committed while held"
        await release()
        assert slots.in_use == 0

        # A lost race: decided in a transaction, whose connection is back before the reply.
        other = await _new_job(client)
        async with db.begin() as conn:
            await conn.execute(
                sa.text("UPDATE jobs.jobs SET updated_at = updated_at WHERE id = :id"),
                {"id": other},
            )
        reply, release = await claim_holding(state, _claim(other))
        assert reply.granted
        assert slots.in_use == 0
        await release()
        assert slots.in_use == 0

        # A handler that fails gives its connection back too.
        async def boom(*_: object, **__: object) -> None:
            raise ValueError("boom")

        monkeypatch.setattr(workers, "claim_job", boom)
        with pytest.raises(ValueError, match="boom"):
            await claim_holding(state, _claim(other))
        assert slots.in_use == 0
