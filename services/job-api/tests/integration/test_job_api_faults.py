"""Fault injection against the whole job-api: the invariants of DESIGN.md (1-3, 6) hold when the
relay dies, messages are duplicated or poisoned, workers vanish or come back as zombies, users
cancel at the worst moment, and the broker drops every connection or restarts.

Each test runs the real app (relay, events consumer, claim RPC server, lease watchdog) against the
real PostgreSQL and RabbitMQ, in its own broker namespace.
"""

import asyncio
import contextlib
import dataclasses
import os
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from job_api_testing import (
    AMQP_URL,
    WORKER_HEADERS,
    enroll_worker,
    eventually,
    job_body,
    rabbitmqctl,
    running_app,
    served_app,
    user_headers,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.enums import FailureClass, GPUProvider, JobType, ModelStore
from contracts.events import (
    DatasetValidated,
    Envelope,
    JobCancelRequested,
    JobProgress,
    ModelPushed,
)
from contracts.routing import BrokerNames
from job_api.adapters.tables import OUTBOX_CHANNEL, outbox
from messaging.broker import Broker
from messaging.outbox import OutboxRelay
from servicekit.db import asyncpg_dsn
from workerlink.link import BrokerLink, Offer

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"


# --------------------------------------------------------------------------------------- helpers


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


async def status_rows(client: httpx.AsyncClient, job_id: str, to_status: str) -> list[Any]:
    return [
        r for r in await history(client, job_id, "status") if r["data"]["to_status"] == to_status
    ]


async def outbox_types(db: AsyncEngine) -> list[str]:
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(outbox.c.event_type).order_by(outbox.c.id))
        return [r.event_type for r in rows]


async def queue_depth(link: BrokerLink, queue: str) -> int:
    """Ready messages in `queue` (a passive declare: fails if the queue does not exist)."""
    channel = await link.connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await channel.close()


# The claim secret granted to each (job, attempt): what the worker holding it keeps.
SECRETS: dict[tuple[str, int], str] = {}


def progress(worker: BrokerLink, job_id: str, attempt: int, value: float) -> JobProgress:
    return JobProgress(
        job_id=uuid.UUID(job_id),
        attempt=attempt,
        worker_id=worker.worker_id,
        claim_secret=SECRETS.get((job_id, attempt), "not-granted"),
        progress=value,
        step=int(value),
        total_steps=100,
        loss=1 - value / 100,
        log_lines=[f"{worker.worker_id} at {value:g}%"],
    )


def completed(worker: BrokerLink, job_id: str, attempt: int, revision: str) -> ModelPushed:
    return ModelPushed(
        job_id=uuid.UUID(job_id),
        attempt=attempt,
        worker_id=worker.worker_id,
        claim_secret=SECRETS.get((job_id, attempt), "not-granted"),
        repo_id="alice/custom-embedding",
        revision=revision,
        store=ModelStore.HUB,
        uri=f"hf://alice/custom-embedding@{revision}",
    )


def remember(job_id: str, reply: Any) -> None:
    assert reply.job is not None
    SECRETS[(job_id, reply.job.attempt)] = reply.job.claim_secret


async def take_job(worker: BrokerLink, job_id: str, *, attempt: int) -> Offer:
    offer = await worker.next_offer(timeout=10)
    assert str(offer.job_id) == job_id
    reply = await worker.claim(offer)
    assert reply.granted, reply
    assert reply.job is not None
    assert reply.job.attempt == attempt
    remember(job_id, reply)
    return offer


async def wait_progress(client: httpx.AsyncClient, job_id: str, value: float) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = await get_job(client, job_id)
        return job if job["progress"] == value else None

    result: dict[str, Any] = await eventually(check)
    return result


async def wait_status(
    client: httpx.AsyncClient, job_id: str, status: str, *, timeout: float = 10
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = await get_job(client, job_id)
        return job if job["status"] == status else None

    result: dict[str, Any] = await eventually(check, timeout=timeout)
    return result


class CancelSink:
    """Collects the JobCancelRequested a worker hears for one attempt."""

    def __init__(self) -> None:
        self.received: list[JobCancelRequested] = []

    def __call__(self, payload: JobCancelRequested) -> None:
        self.received.append(payload)

    def reasons(self) -> list[str]:
        return [str(p.reason) for p in self.received]

    async def wait_for(self, reason: str, *, timeout: float = 10) -> JobCancelRequested:
        async def check() -> JobCancelRequested | None:
            return next((p for p in self.received if p.reason == reason), None)

        found: JobCancelRequested = await eventually(check, timeout=timeout)
        return found


# ------------------------------------------------------------------ 1. relay dies (invariant 1)


async def test_job_committed_while_the_relay_is_down_is_dispatched_later(
    db: AsyncEngine, settings_factory: Any, make_worker: Any
) -> None:
    """The job row and its job.created commit together; with no relay nothing is published (the
    row waits in the outbox), and a relay started later - a new process - dispatches it."""
    async with running_app(settings_factory(run_relay=False)) as client:
        worker = await make_worker()  # after the app declared the topology
        job_id = await create_job(client)
        assert "job.created" in await outbox_types(db)
        with pytest.raises(TimeoutError):
            await worker.next_offer(timeout=1)
        assert (await get_job(client, job_id))["status"] == "pending"
    assert "job.created" in await outbox_types(db), "a stopped app must not lose the outbox row"

    async with running_app(settings_factory()) as client:
        await take_job(worker, job_id, attempt=1)
        assert (await get_job(client, job_id))["status"] == "running"

        async def outbox_drained() -> bool:
            return not await outbox_types(db)

        await eventually(outbox_drained)


class _StuckBroker:
    """A broker that accepts a publish and never confirms it."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def publish_raw(self, *_args: Any, **_kwargs: Any) -> None:
        self.entered.set()
        await asyncio.Future()


class _DownBroker:
    async def publish_raw(self, *_args: Any, **_kwargs: Any) -> None:
        raise ConnectionError("broker unreachable")


async def test_relay_killed_mid_publish_keeps_the_row_until_confirmed(
    db: AsyncEngine, database_url: str, settings_factory: Any, make_worker: Any
) -> None:
    """A relay cancelled while it waits for a confirm, or one whose publish fails, leaves the row
    (not counted as an attempt); the next relay publishes it."""
    dsn = asyncpg_dsn(database_url)
    async with running_app(settings_factory(run_relay=False)) as client:
        worker = await make_worker()  # after the app declared the topology
        job_id = await create_job(client)

        stuck = _StuckBroker()
        relay = OutboxRelay(
            dsn=dsn,
            table=outbox,
            broker=stuck,  # type: ignore[arg-type]
            channel=OUTBOX_CHANNEL,
        )
        task = asyncio.create_task(relay.relay_once())
        await asyncio.wait_for(stuck.entered.wait(), 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await relay.close()  # the killed relay's process is gone, its session and lock with it
        assert "job.created" in await outbox_types(db)

        down = OutboxRelay(
            dsn=dsn,
            table=outbox,
            broker=_DownBroker(),  # type: ignore[arg-type]
            channel=OUTBOX_CHANNEL,
            poll_interval=0.01,
        )
        async with down:
            assert await down.relay_once() == 0
        assert down.stats.failures >= 1
        assert down.stats.published == 0
        async with db.connect() as conn:
            attempts = (
                await conn.execute(
                    sa.select(outbox.c.attempts).where(outbox.c.event_type == "job.created")
                )
            ).scalar_one()
        assert attempts == 0, "a broker outage is not the event's fault: no backoff"
        with pytest.raises(TimeoutError):
            await worker.next_offer(timeout=0.5)

    async with running_app(settings_factory()) as client:
        await take_job(worker, job_id, attempt=1)
        assert (await get_job(client, job_id))["attempt"] == 1


# ----------------------------------------------------- 2. duplicates applied once (invariant 3)


async def test_a_message_delivered_twice_is_applied_once(
    client: httpx.AsyncClient, db: AsyncEngine, make_worker: Any
) -> None:
    worker = await make_worker()
    job_id = await create_job(client)
    await take_job(worker, job_id, attempt=1)
    # A raw publisher beside the worker: the same report sent twice with one event id.
    broker = Broker(AMQP_URL, worker.names, client_name="test-duplicates")
    await broker.connect()

    # model.completed has no subscriber in this namespace: bind one to count what the relay sends.
    channel = await broker.channel()
    completions = await channel.declare_queue(exclusive=True, auto_delete=True)
    await completions.bind(broker.names.events_exchange, routing_key="model.completed")
    reports = broker.names.worker_exchange

    first = progress(worker, job_id, 1, 30)
    envelope = Envelope.wrap(first, source=worker.source, event_id=uuid.uuid4())
    await broker.publish(envelope, first.routing_key(), exchange=reports)
    await broker.publish(envelope, first.routing_key(), exchange=reports)
    # Same queue, same order: once a later event is applied, both copies have been consumed.
    await worker.publish(progress(worker, job_id, 1, 40))
    await wait_progress(client, job_id, 40)
    rows = await history(client, job_id, "progress")
    assert [r["data"]["progress"] for r in rows] == [30, 40]

    done = completed(worker, job_id, 1, "rev-1")
    envelope = Envelope.wrap(done, source=worker.source, event_id=uuid.uuid4())
    await broker.publish(envelope, done.routing_key(), exchange=reports)
    await broker.publish(envelope, done.routing_key(), exchange=reports)
    marker = DatasetValidated(
        dataset_id=uuid.uuid4(),
        user_id="alice",
        filename="marker.csv",
        format="csv",
        job_types=[JobType.EMBEDDING],
        rows=1,
        size_bytes=10,
        sha256="0" * 64,
    )
    await broker.publish(Envelope.wrap(marker, source="data-service"), marker.routing_key())

    async def marker_applied() -> bool:
        async with db.connect() as conn:
            found = await conn.execute(
                sa.text("SELECT 1 FROM jobs.known_datasets WHERE dataset_id = :id"),
                {"id": marker.dataset_id},
            )
            return found.first() is not None

    await eventually(marker_applied)
    job = await get_job(client, job_id)
    assert job["status"] == "completed"
    assert job["output_revision"] == "rev-1"
    assert len(await status_rows(client, job_id, "completed")) == 1

    async def outbox_drained() -> bool:
        return not await outbox_types(db)

    await eventually(outbox_drained)
    published = []
    while (message := await completions.get(no_ack=True, fail=False)) is not None:
        published.append(message)
    assert len(published) == 1, "exactly one model.completed for one completion"
    announced = Envelope.model_validate_json(published[0].body)
    assert announced.data["attempt"] == 1
    assert announced.data["revision"] == "rev-1"
    assert announced.source == "job-api"
    await channel.close()


async def test_a_redelivered_event_is_acked_as_a_duplicate_not_retried_or_dead_lettered(
    settings_factory: Any, db: AsyncEngine, publisher: Broker
) -> None:
    """An event delivered again after its first delivery was applied and committed (the broker
    redelivers what it has not seen acked) meets the inbox row of the first: a clean skip, counted
    as a duplicate and acked. A unique-key crash would instead be requeued until the delivery
    limit dead-letters it, which the counts and the dead-letter queue would show."""

    async def known(dataset_id: uuid.UUID) -> bool:
        async with db.connect() as conn:
            found = await conn.execute(
                sa.text("SELECT 1 FROM jobs.known_datasets WHERE dataset_id = :id"),
                {"id": dataset_id},
            )
            return found.first() is not None

    def validated(filename: str) -> DatasetValidated:
        return DatasetValidated(
            dataset_id=uuid.uuid4(),
            user_id="alice",
            filename=filename,
            format="csv",
            job_types=[JobType.EMBEDDING],
            rows=1,
            size_bytes=10,
            sha256="0" * 64,
        )

    async with served_app(settings_factory(access_log=False)) as (_client, app):
        consumer = app.state.service.consumer
        assert consumer is not None
        before = dataclasses.replace(consumer.stats)
        event = validated("train.csv")
        envelope = Envelope.wrap(event, source="data-service")
        await publisher.publish(envelope, event.routing_key())

        async def first_committed() -> bool:
            return consumer.stats.applied == before.applied + 1 and await known(event.dataset_id)

        await eventually(first_committed)
        # The same envelope (one event id) again, as a redelivery, then a marker behind it on
        # the same queue: once the marker is applied, the copy has been settled.
        await publisher.publish(envelope, event.routing_key())
        marker = validated("marker.csv")
        await publisher.publish(Envelope.wrap(marker, source="data-service"), marker.routing_key())

        async def marker_applied() -> bool:
            return consumer.stats.applied == before.applied + 2 and await known(marker.dataset_id)

        await eventually(marker_applied)
        stats = consumer.stats
        assert stats.duplicates == before.duplicates + 1, stats
        assert stats.requeued == before.requeued, "the copy crashed and went back to the queue"
        assert stats.rejected == before.rejected, stats
        assert stats.dead_lettered == before.dead_lettered, stats
        assert stats.infra_retries == before.infra_retries, stats
        assert await consumer.caught_up(timeout=5, settle=0), "every delivery is settled"
        assert await queue_depth(publisher, publisher.names.service_queue("job-api")) == 0
        assert await queue_depth(publisher, publisher.names.dead_letter_queue) == 0


# --------------------------------------------- 3. worker claims then vanishes (invariants 1, 2)


async def test_vanished_worker_loses_the_lease_and_the_job_is_requeued(
    settings_factory: Any, db: AsyncEngine, make_worker: Any
) -> None:
    settings = settings_factory(lease_seconds=1, watchdog_interval=0.2)
    async with running_app(settings) as client:
        first = await make_worker("w-gone")
        job_id = await create_job(client)
        await take_job(first, job_id, attempt=1)
        await first.close()  # it never reports again

        async def requeued() -> list[Any]:
            return [
                r
                for r in await status_rows(client, job_id, "pending")
                if r["data"]["reason"] == "lease_expired"
            ]

        [row] = await eventually(requeued)
        assert row["data"]["attempt"] == 1
        assert row["data"]["failure_class"] == FailureClass.INFRA_ERROR
        assert first.worker_id in row["data"]["error"]
        job = await get_job(client, job_id)
        assert job["status"] == "pending"
        assert job["attempt"] == 1
        assert job["worker_id"] is None
        assert job["lease_expires_at"] is None
        assert "heartbeats" in job["error"]

        second = await make_worker("w-next")
        offer = await second.next_offer(timeout=10)
        assert str(offer.job_id) == job_id
        assert offer.message.type == "job.requeued"
        reply = await second.claim(offer)
        assert reply.granted
        assert reply.job is not None
        assert reply.job.attempt == 2
        job = await get_job(client, job_id)
        assert job["status"] == "running"
        assert job["worker_id"] == second.worker_id


async def test_vanished_worker_on_the_last_attempt_fails_the_job(
    settings_factory: Any, db: AsyncEngine, make_worker: Any
) -> None:
    settings = settings_factory(lease_seconds=1, watchdog_interval=0.2, max_attempts=1)
    async with running_app(settings) as client:
        worker = await make_worker("w-gone")
        job_id = await create_job(client)
        await take_job(worker, job_id, attempt=1)
        await worker.close()

        job = await wait_status(client, job_id, "failed")
        assert job["failure_class"] == FailureClass.INFRA_ERROR
        assert "No attempts left" in job["error"]
        assert job["attempt"] == 1
        reasons = [r["data"]["reason"] for r in await history(client, job_id, "status")]
        assert "lease_expired" not in reasons, "no attempts left: the job must not be requeued"


async def test_worker_dying_before_it_acknowledges_never_loses_the_job(
    settings_factory: Any, make_worker: Any
) -> None:
    """Dispatch step 4: an offer is acknowledged only once the claim is answered. A worker that
    dies holding an unclaimed offer gives it back; one that dies between its claim and its ack
    gives back an offer the next worker is refused, and the lease watchdog requeues the job."""
    async with running_app(settings_factory(lease_seconds=1)) as client:
        a = await make_worker("w-a")
        job_id = await create_job(client)
        offer = await a.next_offer(timeout=10)
        await a.close()  # dies before claiming

        b = await make_worker("w-b")
        offer = await b.next_offer(timeout=10)
        assert str(offer.job_id) == job_id
        assert offer.message.redelivered
        reply = await b.request_claim(offer.job_id)  # granted, but B dies before acknowledging
        assert reply.granted
        assert reply.job is not None
        assert reply.job.attempt == 1
        await b.close()

        c = await make_worker("w-c")
        replies = []
        for _ in range(2):  # the redelivered job.created, and the job.requeued after B's lease
            offer = await c.next_offer(timeout=10)
            assert str(offer.job_id) == job_id
            replies.append((offer.message.type, await c.claim(offer)))
        granted = [r for _, r in replies if r.granted]
        assert len(granted) == 1, replies
        assert granted[0].job is not None
        assert granted[0].job.attempt == 2
        refused = [r for _, r in replies if not r.granted]
        assert [r.refusal for r in refused] == ["not_pending"]
        assert sorted(t for t, _ in replies) == ["job.created", "job.requeued"]


async def test_a_pending_job_whose_offer_was_lost_is_offered_again(
    settings_factory: Any, make_worker: Any, broker_prefix: str
) -> None:
    """Invariant 1 when the broker loses the offer itself (a purged queue, or a message
    dead-lettered after its delivery limit): the watchdog re-dispatches a job left pending past
    `redispatch_seconds`, and it is claimed as attempt 1."""
    async with running_app(settings_factory(redispatch_seconds=1)) as client:
        worker = await make_worker("w-late", job_types=(JobType.CLASSIFIER,))
        job_id = await create_job(client)
        queue = worker.names.work_queue(JobType.EMBEDDING, GPUProvider.LOCAL)

        async def offered() -> bool:
            return await queue_depth(worker, queue) >= 1

        await eventually(offered)
        channel = await worker.connection.channel()
        await (await channel.get_queue(queue)).purge()  # the offer is gone
        await channel.close()

        embedding_worker = await make_worker("w-embed")
        offer = await embedding_worker.next_offer(timeout=10)
        assert str(offer.job_id) == job_id
        assert offer.message.type == "job.requeued"
        reply = await embedding_worker.claim(offer)
        assert reply.granted
        assert reply.job is not None
        assert reply.job.attempt == 1


async def test_an_expired_claim_request_puts_the_offer_back(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    """A claim refused as expired (the request sat too long, or the worker's clock is behind)
    must not drop the offer: the job is still pending and the offer returns to the queue."""
    skewed = await make_worker("w-skewed")
    skewed._clock = lambda: datetime.now(UTC) - timedelta(minutes=5)
    job_id = await create_job(client)
    offer = await skewed.next_offer(timeout=10)
    reply = await skewed.claim(offer)
    assert not reply.granted
    assert reply.refusal == "expired"
    await skewed.close()
    worker = await make_worker("w-on-time")
    again = await worker.next_offer(timeout=10)
    assert str(again.job_id) == job_id
    assert again.message.redelivered
    granted = await worker.claim(again)
    assert granted.granted


async def test_a_retried_claim_is_granted_the_same_attempt(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    """A claim whose reply was lost is asked again with the same claim id: same attempt, no
    second grant; any other claim is refused."""
    worker = await make_worker("w1")
    other = await make_worker("w2")
    job_id = await create_job(client)
    offer = await worker.next_offer(timeout=10)
    claim_id = uuid.uuid4()
    first = await worker.request_claim(offer.job_id, claim_id=claim_id)
    again = await worker.request_claim(offer.job_id, claim_id=claim_id)
    assert first.granted
    assert again.granted
    assert first.job is not None
    assert again.job is not None
    assert first.job.attempt == again.job.attempt == 1
    assert (await worker.request_claim(offer.job_id)).refusal == "not_pending"
    assert (await other.request_claim(offer.job_id, claim_id=claim_id)).refusal == "not_pending"
    await offer.message.ack()
    job = await get_job(client, job_id)
    assert job["attempt"] == 1
    assert job["worker_id"] == worker.worker_id
    assert len(await status_rows(client, job_id, "running")) == 1


async def test_heartbeats_keep_the_lease(settings_factory: Any, make_worker: Any) -> None:
    """Progress doubles as the heartbeat: a worker reporting more often than its lease keeps the
    job well past the lease length."""
    async with running_app(settings_factory(lease_seconds=1, watchdog_interval=0.1)) as client:
        worker = await make_worker()
        job_id = await create_job(client)
        await take_job(worker, job_id, attempt=1)
        for value in range(1, 8):
            await worker.publish(progress(worker, job_id, 1, value * 10))
            await asyncio.sleep(0.25)
        job = await wait_progress(client, job_id, 70)
        assert job["status"] == "running"
        assert job["attempt"] == 1
        reasons = [r["data"]["reason"] for r in await history(client, job_id, "status")]
        assert "lease_expired" not in reasons


# ------------------------------------------------------------- 4. zombie worker (invariant 2)


async def test_zombie_worker_is_fenced_off_and_told_to_stop(
    client: httpx.AsyncClient, db: AsyncEngine, make_worker: Any
) -> None:
    """Worker A loses its lease (a partition, say) but keeps going; worker B holds attempt 2.
    Nothing A sends has effect, A is told to stop, B completes the job."""
    a = await make_worker("w-a")
    job_id = await create_job(client)
    await take_job(a, job_id, attempt=1)
    a_cancels = CancelSink()
    await a.watch_cancel(uuid.UUID(job_id), 1, a_cancels)
    # A stops consuming offers (it is busy training); it keeps its publishing channel.
    await a.pause_offers()

    # Time passes without a heartbeat from A: its lease lapses and the watchdog requeues the job.
    async with db.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE jobs.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": uuid.UUID(job_id)},
        )
    lapsed = await a_cancels.wait_for("lease_expired")
    assert lapsed.attempt == 1

    b = await make_worker("w-b")
    offer = await b.next_offer(timeout=10)
    assert str(offer.job_id) == job_id
    assert offer.message.type == "job.requeued"
    reply = await b.claim(offer)
    assert reply.granted
    assert reply.job is not None
    assert reply.job.attempt == 2
    remember(job_id, reply)
    b_cancels = CancelSink()
    await b.watch_cancel(uuid.UUID(job_id), 2, b_cancels)
    await b.publish(progress(b, job_id, 2, 10))
    await wait_progress(client, job_id, 10)

    # A, over HTTP: refused with 409 and a machine-readable code.
    stale = await client.patch(
        f"{JOBS}/{job_id}", json={"progress": 90, "attempt": 1}, headers=WORKER_HEADERS
    )
    assert stale.status_code == 409, stale.text
    assert stale.json()["error"]["code"] == "stale_attempt"
    stale = await client.patch(
        f"{JOBS}/{job_id}",
        json={"status": "completed", "attempt": 1, "output_revision": "zombie"},
        headers=WORKER_HEADERS,
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "stale_attempt"

    # A, over the broker: ignored, and told to stop.
    await a.publish(progress(a, job_id, 1, 77))
    await a.publish(completed(a, job_id, 1, "zombie"))
    told = await a_cancels.wait_for("stale_attempt")
    assert told.attempt == 1
    # B's next heartbeat is behind A's events in the queue: once applied, A's were consumed.
    await b.publish(progress(b, job_id, 2, 20))
    job = await wait_progress(client, job_id, 20)
    assert job["status"] == "running"
    assert job["attempt"] == 2
    assert job["worker_id"] == b.worker_id
    assert job["output_revision"] is None
    rows = await history(client, job_id, "progress")
    assert [(r["attempt"], r["data"]["progress"]) for r in rows] == [(2, 10), (2, 20)]
    assert await status_rows(client, job_id, "completed") == []
    assert b_cancels.received == [], "B must not hear A's stop orders"

    await b.publish(completed(b, job_id, 2, "rev-b"))
    job = await wait_status(client, job_id, "completed")
    assert job["output_revision"] == "rev-b"
    assert job["attempt"] == 2
    assert job["progress"] == 100
    [done] = await status_rows(client, job_id, "completed")
    assert done["attempt"] == 2


# ------------------------------------------------------------------ 5. cancel (invariants 2, 6)


async def test_cancel_while_pending_refuses_the_queued_offer(
    client: httpx.AsyncClient, make_worker: Any, broker_prefix: str
) -> None:
    job_id = await create_job(client)
    observer = await make_worker("observer", job_types=(JobType.CLASSIFIER,))
    work_queue = observer.names.work_queue(JobType.EMBEDDING, GPUProvider.LOCAL)

    async def queued() -> bool:
        return await queue_depth(observer, work_queue) == 1

    # Exactly one: under load the relay once sent a new job's offer twice (a read that came
    # back after publish_now() had the row confirmed; messaging's outbox tests pin it down).
    await eventually(queued)
    cancelled = await client.delete(f"{JOBS}/{job_id}", headers=user_headers())
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["status"] == "cancelled"

    worker = await make_worker("late")
    offer = await worker.next_offer(timeout=10)
    assert str(offer.job_id) == job_id
    reply = await worker.claim(offer)
    assert not reply.granted
    assert reply.refusal == "not_pending"
    # Closing the channel would return an unacknowledged message to the queue.
    await worker.close()
    assert await queue_depth(observer, work_queue) == 0
    job = await get_job(client, job_id)
    assert job["status"] == "cancelled"
    assert job["attempt"] == 0


async def test_cancel_while_running_stops_the_worker(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    worker = await make_worker()
    job_id = await create_job(client)
    await take_job(worker, job_id, attempt=1)
    cancels = CancelSink()
    await worker.watch_cancel(uuid.UUID(job_id), 1, cancels)
    await worker.publish(progress(worker, job_id, 1, 25))
    await wait_progress(client, job_id, 25)

    response = await client.delete(f"{JOBS}/{job_id}", headers=user_headers())
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "cancelled"
    told = await cancels.wait_for("user", timeout=5)
    assert told.attempt == 1

    # The worker had one more step in flight: its report is ignored.
    await worker.publish(progress(worker, job_id, 1, 30))
    await worker.publish(completed(worker, job_id, 1, "too-late"))
    await cancels.wait_for("stale_attempt")
    job = await get_job(client, job_id)
    assert job["status"] == "cancelled"
    assert job["progress"] == 25
    assert job["output_revision"] is None
    assert [r["data"]["progress"] for r in await history(client, job_id, "progress")] == [25]
    again = await client.delete(f"{JOBS}/{job_id}", headers=user_headers())
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "illegal_transition"


# ---------------------------------------------------------------- 6. poison (invariants 1, 3)


async def test_poison_messages_are_dead_lettered_and_the_consumer_goes_on(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    worker = await make_worker()
    job_id = await create_job(client)
    await take_job(worker, job_id, attempt=1)
    # A raw publisher beside the worker (its client sends only well-formed reports).
    broker = Broker(AMQP_URL, worker.names, client_name="test-poison")
    await broker.connect()

    garbage_id, unknown_id, invalid_id = (str(uuid.uuid4()) for _ in range(3))
    await broker.publish_raw(
        b"\x00\xffnot json at all",
        routing_key="job.progress",
        exchange=broker.names.worker_exchange,
        message_id=garbage_id,
        event_type="job.progress",
    )
    unknown = Envelope(
        id=uuid.UUID(unknown_id),
        type="job.teleported",
        source="gpu-worker/x",
        data={"job_id": job_id},
    )
    await broker.publish_raw(
        unknown.model_dump_json().encode(),
        routing_key="job.progress",
        exchange=broker.names.worker_exchange,
        message_id=unknown_id,
        event_type=unknown.type,
    )
    invalid = Envelope(
        id=uuid.UUID(invalid_id),
        type="job.progress",
        source=worker.source,
        subject=job_id,
        data={
            "job_id": job_id,
            "attempt": 1,
            "worker_id": worker.worker_id,
            "claim_secret": SECRETS[(job_id, 1)],
            "progress": 500,
        },
    )
    await broker.publish_raw(
        invalid.model_dump_json().encode(),
        routing_key="job.progress",
        exchange=broker.names.worker_exchange,
        message_id=invalid_id,
        event_type=invalid.type,
    )
    await worker.publish(progress(worker, job_id, 1, 60))

    job = await wait_progress(client, job_id, 60)
    assert job["status"] == "running"
    dlq = broker.names.dead_letter_queue

    async def dead_lettered() -> bool:
        return await queue_depth(broker, dlq) == 3

    await eventually(dead_lettered)
    channel = await broker.channel()
    queue = await channel.get_queue(dlq)
    ids = set()
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        ids.add(message.message_id)
    await channel.close()
    assert ids == {garbage_id, unknown_id, invalid_id}
    assert [r["data"]["progress"] for r in await history(client, job_id, "progress")] == [60]


# ------------------------------------------------- 7. broker connections lost (invariants 1, 3)


def _local_ports_to(port: int) -> set[int]:
    """Local ports of this process's TCP connections to `port` (read from /proc, Linux only)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if match := re.fullmatch(r"socket:\[(\d+)\]", target):
                inodes.add(match.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


async def _close_my_broker_connections() -> int:
    """Close this process's AMQP connections (job-api's and the test workers') from the broker
    side, leaving other processes' connections alone."""
    mine = _local_ports_to(5672)
    assert mine, "no AMQP connection from this process"
    listing = await rabbitmqctl("list_connections", "--no-table-headers", "-q", "pid", "peer_port")
    closed = 0
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) in mine:
            await rabbitmqctl("close_connection", parts[0], "test: connection lost")
            closed += 1
    return closed


async def _first_offer(workers: Sequence[BrokerLink], timeout: float) -> tuple[BrokerLink, Offer]:
    tasks = {asyncio.create_task(w.next_offer(timeout=timeout)): w for w in workers}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        task = next(iter(done))
        return tasks[task], task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _survives_a_broker_outage(
    client: httpx.AsyncClient, make_worker: Any, outage: Any
) -> None:
    """Shared by the connection-loss and broker-restart tests: `outage(during)` breaks the broker,
    awaits `during()` while it is broken, and returns once the broker is back."""
    worker = await make_worker("w-before")
    job_id = await create_job(client)
    await take_job(worker, job_id, attempt=1)
    sent = 0
    for value in (10, 20, 30):
        await worker.publish(progress(worker, job_id, 1, value))
        sent += 1
    # Applied, though perhaps not yet acknowledged when the connections drop: a redelivery after
    # the reconnect must be recognised by the inbox.
    await wait_progress(client, job_id, 30)
    created_during: list[str] = []

    async def during() -> None:
        # Committed while job-api cannot reach the broker: the relay must keep retrying.
        created_during.append(await create_job(client, output_model="alice/during-outage"))

    await outage(during)
    [second] = created_during

    # job-api recovers by itself; a worker that lost its connection may come back or be replaced.
    fresh = await make_worker("w-after")
    for value in (40, 50):
        await fresh.publish(progress(fresh, job_id, 1, value))
        sent += 1
    await wait_progress(client, job_id, 50)
    taker, offer = await _first_offer([worker, fresh], timeout=30)
    assert str(offer.job_id) == second
    reply = await taker.claim(offer)
    assert reply.granted
    assert reply.job is not None
    assert reply.job.attempt == 1
    remember(second, reply)

    rows = await history(client, job_id, "progress")
    assert [r["data"]["progress"] for r in rows] == [10, 20, 30, 40, 50][: len(rows)]
    assert len(rows) == sent, "every event applied exactly once"
    await fresh.publish(completed(fresh, job_id, 1, "after-outage"))
    await wait_status(client, job_id, "completed")


async def test_job_api_recovers_when_the_broker_drops_its_connections(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    async def outage(during: Any) -> None:
        assert await _close_my_broker_connections() >= 2
        await during()

    await _survives_a_broker_outage(client, make_worker, outage)


@pytest.mark.timeout(300)
async def test_job_api_recovers_from_a_broker_restart(
    settings_factory: Any, broker_prefix: str, db: AsyncEngine, killable_broker: Any
) -> None:
    """A real broker restart, in the default test run: on a RabbitMQ node of this test's own
    (never the shared one: tests/support/disposable.py), stopped while a worker runs a job and
    job-api commits a new one."""
    async with killable_broker() as node:
        workers: list[BrokerLink] = []

        async def make_private_worker(name: str = "w1") -> BrokerLink:
            worker = BrokerLink(
                node.url,
                BrokerNames(broker_prefix),
                identity=await enroll_worker(db, name=name),
                provider=GPUProvider.LOCAL,
                job_types=list(JobType),
            )
            await worker.connect()
            await worker.resume_offers()
            workers.append(worker)
            return worker

        async def outage(during: Any) -> None:
            await node.stop()
            await during()
            await node.start()

        try:
            async with running_app(settings_factory(amqp_url=node.url)) as client:
                await _survives_a_broker_outage(client, make_private_worker, outage)
        finally:
            for worker in workers:
                with contextlib.suppress(Exception):
                    await worker.close(flush_timeout=1)
