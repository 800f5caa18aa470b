"""The inbox and the idempotent batching consumer: an event takes effect once however often it is
delivered; one failing event does not block the others and ends in the dead-letter queue."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from messaging_testing import EFFECTS, INBOX, Topology, eventually, progress
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.events import Envelope, JobProgress
from messaging.consumer import InboxConsumer, Received
from messaging.inbox import Inbox

pytestmark = pytest.mark.integration

CONSUMER = "tests"
POISON = 13.0  # the handler fails on this progress value
SLOW = 1.0  # and takes a moment over this one, so that the events behind it queue up


class Handler:
    """Writes one effect row per event; records the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[uuid.UUID]] = []

    async def __call__(self, conn: AsyncConnection, batch: Sequence[Received]) -> None:
        self.batches.append([r.envelope.id for r in batch])
        values = []
        for r in batch:
            assert isinstance(r.payload, JobProgress)
            values.append({"event_id": r.envelope.id, "value": r.payload.progress})
        await conn.execute(sa.insert(EFFECTS), values)
        if any(v["value"] == SLOW for v in values):
            await asyncio.sleep(0.3)
        if any(v["value"] == POISON for v in values):
            raise RuntimeError("cannot apply this one")

    def calls_with(self, event_id: uuid.UUID) -> int:
        return sum(event_id in b for b in self.batches)


async def effects(engine: AsyncEngine) -> list[uuid.UUID]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(EFFECTS.c.event_id))).scalars())


async def inbox_ids(engine: AsyncEngine) -> set[uuid.UUID]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(INBOX.c.event_id).where(INBOX.c.consumer == CONSUMER))
        return set(rows.scalars())


def make_consumer(
    engine: AsyncEngine, topology: Topology, queue: str, handler: Any, **options: Any
) -> InboxConsumer:
    return InboxConsumer(
        broker=topology.broker,
        queue=queue,
        begin=engine.begin,
        inbox=Inbox(INBOX, consumer=CONSUMER),
        handler=handler,
        **{"max_backoff": 0.2, **options},
    )


@contextlib.asynccontextmanager
async def consuming(
    engine: AsyncEngine, topology: Topology, queue: str, handler: Handler
) -> AsyncIterator[InboxConsumer]:
    consumer = make_consumer(engine, topology, queue, handler)
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def send(topology: Topology, *envelopes: Envelope) -> None:
    for envelope in envelopes:
        await topology.broker.publish(envelope, "job.progress")


def wrap(payload: JobProgress) -> Envelope:
    return Envelope.wrap(payload, source="gpu-worker/w1")


# -------------------------------------------------------------------------------------- inbox


async def test_inbox_records_ids_and_returns_only_fresh_ones(engine: AsyncEngine) -> None:
    inbox = Inbox(INBOX, consumer=CONSUMER)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as conn:
        assert await inbox.record_new(conn, [a, b]) == {a, b}
    async with engine.begin() as conn:
        assert await inbox.record_new(conn, [b, c, c]) == {c}
        assert await inbox.record_new(conn, []) == set()
    # Another consumer keeps its own record of the same events.
    async with engine.begin() as conn:
        assert await Inbox(INBOX, consumer="other").record_new(conn, [a]) == {a}
    # Recorded in the caller's transaction: rolled back with its effect.
    d = uuid.uuid4()
    async with engine.connect() as conn:
        assert await inbox.record_new(conn, [d]) == {d}
        await conn.rollback()
    async with engine.begin() as conn:
        assert await inbox.record_new(conn, [d]) == {d}


async def test_inbox_prune_forgets_old_ids_of_its_consumer_only(engine: AsyncEngine) -> None:
    inbox = Inbox(INBOX, consumer=CONSUMER)
    old, recent, others = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as conn:
        await inbox.record_new(conn, [old, recent])
        await Inbox(INBOX, consumer="other").record_new(conn, [others])
        await conn.execute(
            sa.update(INBOX)
            .where(INBOX.c.event_id.in_([old, others]))
            .values(processed_at=sa.func.now() - timedelta(days=10))
        )
    async with engine.begin() as conn:
        assert await inbox.prune(conn, timedelta(days=3)) == 1
    assert await inbox_ids(engine) == {recent}
    async with engine.connect() as conn:
        kept = await conn.execute(sa.select(INBOX.c.event_id).where(INBOX.c.consumer == "other"))
        assert set(kept.scalars()) == {others}


# ----------------------------------------------------------------------------------- consumer


async def test_batch_is_applied_once_and_duplicates_are_skipped(
    engine: AsyncEngine, topology: Topology
) -> None:
    queue = await topology.declare("consumer", ["job.progress"])
    envelopes = [wrap(progress(v)) for v in (10, 20, 30, 40, 50)]
    # The second event arrives twice (a redelivery, a producer retry).
    await send(topology, *envelopes, envelopes[1])
    handler = Handler()
    async with consuming(engine, topology, queue, handler) as consumer:

        async def settled() -> bool:
            return consumer.applied + consumer.duplicates == 6

        await eventually(settled)
        assert consumer.applied == 5
        assert consumer.duplicates == 1
    applied = await effects(engine)
    assert sorted(applied) == sorted(e.id for e in envelopes)
    assert await inbox_ids(engine) == {e.id for e in envelopes}
    assert sum(len(b) for b in handler.batches) == 5

    # All of them again, to a consumer started afresh (a restart after a lost ack): no effect.
    await send(topology, *envelopes)
    async with consuming(engine, topology, queue, Handler()) as consumer:

        async def skipped() -> bool:
            return consumer.duplicates == 5

        await eventually(skipped)
        assert consumer.applied == 0
    assert sorted(await effects(engine)) == sorted(applied)
    assert await topology.depth(queue) == 0


async def test_a_failing_event_is_retried_alone_then_dead_lettered(
    engine: AsyncEngine, topology: Topology
) -> None:
    queue = await topology.declare("consumer", ["job.progress"], delivery_limit=2)
    slow, good1, bad, good2 = (wrap(progress(v)) for v in (SLOW, 10, POISON, 20))
    await send(topology, slow, good1, bad, good2)
    garbage_id = str(uuid.uuid4())
    await topology.broker.publish_raw(
        b"{not an envelope", routing_key="job.progress", message_id=garbage_id, event_type="?"
    )
    handler = Handler()
    async with consuming(engine, topology, queue, handler) as consumer:

        async def dead_lettered() -> bool:
            # At-least-once dead-lettering (quorum queues) may deliver a dead letter twice.
            return await topology.depth(topology.names.dead_letter_queue) >= 2

        await eventually(dead_lettered, timeout=30)
        assert consumer.dead_lettered == 1  # the unparseable one, at once
    assert sorted(await effects(engine)) == sorted([slow.id, good1.id, good2.id])
    assert bad.id not in await inbox_ids(engine), "a failed apply leaves no inbox row"
    # Tried once in a batch with the others, then alone on each redelivery.
    assert any(len(b) > 1 and bad.id in b for b in handler.batches), handler.batches
    assert handler.calls_with(bad.id) >= 2
    assert handler.calls_with(good1.id) <= 2  # its batch, then alone: applied once
    dead = await topology.drain(topology.names.dead_letter_queue)
    assert {m.message_id for m in dead} == {str(bad.id), garbage_id}
    assert await topology.depth(queue) == 0


async def test_unknown_types_and_invalid_payloads_are_dead_lettered(
    engine: AsyncEngine, topology: Topology
) -> None:
    queue = await topology.declare("consumer", ["job.progress"])
    unknown = Envelope(type="job.teleported", source="x", data={"job_id": str(uuid.uuid4())})
    invalid = Envelope(
        type="job.progress",
        source="x",
        data={"job_id": str(uuid.uuid4()), "attempt": 1, "worker_id": "w", "progress": 500},
    )
    before, after = wrap(progress(20)), wrap(progress(30))
    await send(topology, before)
    for envelope in (unknown, invalid):
        await topology.broker.publish_raw(
            envelope.model_dump_json().encode(),
            routing_key="job.progress",
            message_id=str(envelope.id),
            event_type=envelope.type,
        )
    await send(topology, after)
    handler = Handler()
    async with consuming(engine, topology, queue, handler) as consumer:

        async def done() -> Any:
            return consumer.applied == 2 and consumer.dead_lettered == 2

        await eventually(done)
    assert sorted(await effects(engine)) == sorted([before.id, after.id])
    # The consumer's channel is closed now: anything left unacknowledged would be back.
    assert await topology.depth(queue) == 0

    async def dead_lettered() -> bool:
        return await topology.depth(topology.names.dead_letter_queue) == 2

    await eventually(dead_lettered)


async def test_a_closed_channel_ends_the_run_and_nothing_is_lost(
    engine: AsyncEngine, topology: Topology
) -> None:
    """The consumer reads at the AMQP layer, which aio-pika does not restore after a reconnect:
    a closed channel ends `run` with ConnectionError (its supervisor starts it again), and what
    it had received but not acknowledged comes back to the next run, applied once."""
    queue = await topology.declare("consumer", ["job.progress"])
    envelopes = [wrap(progress(v)) for v in (10, 20, 30, 40, 50)]
    entered, release = asyncio.Event(), asyncio.Event()
    inner = Handler()

    async def gated(conn: AsyncConnection, batch: Sequence[Received]) -> None:
        entered.set()
        await release.wait()
        await inner(conn, batch)

    consumer = make_consumer(engine, topology, queue, gated, linger=0)
    task = asyncio.create_task(consumer.run())
    try:
        await send(topology, *envelopes)
        await asyncio.wait_for(entered.wait(), 10)
        channel = consumer._amqp
        assert channel is not None
        await channel.close()
        release.set()  # the batch in hand commits; its ack cannot be sent any more
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(task, 10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await task

    async with consuming(engine, topology, queue, Handler()) as again:

        async def drained() -> bool:
            return again.applied + again.duplicates >= 5 and await topology.depth(queue) == 0

        await eventually(drained)
    assert sorted(await effects(engine)) == sorted(e.id for e in envelopes)
