"""Riding out outages and keeping order.

- The consumer: a database that is unreachable never dead-letters a valid event (it is an
  infrastructure error: pause, back off, retry the same batch); only a handler that rejects an
  event dead-letters it, at once.
- The outbox relay: two relays (two replicas) never reorder the events of one subject, and a
  batch in which one publish fails does not reorder them either.
"""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from messaging_testing import (
    EFFECTS,
    INBOX,
    NOTIFY_CHANNEL,
    OUTBOX,
    SEQUENCES,
    TcpProxy,
    Topology,
    eventually,
    progress,
    status_changed,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.events import Envelope, JobProgress
from messaging.broker import Broker
from messaging.consumer import InboxConsumer, Received, Rejected, is_infrastructure_error
from messaging.inbox import Inbox
from messaging.outbox import Outbox, OutboxRelay
from servicekit.db import make_engine

pytestmark = pytest.mark.integration

CONSUMER = "outage-tests"


async def effect_ids(engine: AsyncEngine) -> list[uuid.UUID]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(EFFECTS.c.event_id))).scalars())


@contextlib.asynccontextmanager
async def consuming(
    engine: AsyncEngine, topology: Topology, queue: str, handler: Any
) -> AsyncIterator[InboxConsumer]:
    consumer = InboxConsumer(
        broker=topology.broker,
        queue=queue,
        begin=engine.begin,
        inbox=Inbox(INBOX, consumer=CONSUMER),
        handler=handler,
        max_backoff=0.2,
    )
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def write_effects(conn: AsyncConnection, batch: Sequence[Received]) -> None:
    values = []
    for r in batch:
        assert isinstance(r.payload, JobProgress)
        values.append({"event_id": r.envelope.id, "value": r.payload.progress})
    await conn.execute(sa.insert(EFFECTS), values)


async def send(topology: Topology, *payloads: JobProgress) -> list[Envelope]:
    envelopes = [Envelope.wrap(p, source="gpu-worker/w1") for p in payloads]
    for envelope in envelopes:
        await topology.broker.publish(envelope, "job.progress")
    return envelopes


def test_infrastructure_errors_are_told_apart_from_bad_messages() -> None:
    import asyncpg

    assert is_infrastructure_error(ConnectionRefusedError())
    assert is_infrastructure_error(asyncpg.exceptions.CannotConnectNowError("starting up"))
    wrapped = sa.exc.DBAPIError("SELECT 1", None, OSError("reset"), connection_invalidated=False)
    assert is_infrastructure_error(wrapped)
    outer = RuntimeError("handler wrapped it")
    outer.__cause__ = ConnectionResetError("peer")
    assert is_infrastructure_error(outer)
    assert not is_infrastructure_error(ValueError("bad data"))
    assert not is_infrastructure_error(Rejected(uuid.uuid4(), "no such thing"))


async def test_database_unreachable_pauses_the_consumer_and_loses_nothing(
    engine: AsyncEngine, messaging_db_url: str, topology: Topology
) -> None:
    """PostgreSQL made unreachable (a TCP proxy cut) while events arrive: far more failed
    attempts than the delivery limit, yet nothing is dead-lettered and each event applies once
    when the database is back."""
    queue = await topology.declare("consumer", ["job.progress"], delivery_limit=2)
    url = make_url(messaging_db_url)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = make_engine(
            url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
            application_name="outage-tests",
            pool_size=2,
        )
        try:
            async with consuming(proxied, topology, queue, write_effects) as consumer:
                first = await send(topology, progress(10))

                async def applied_first() -> bool:
                    return consumer.applied == 1

                await eventually(applied_first)
                proxy.cut()
                during = await send(topology, *(progress(v) for v in range(20, 60, 10)))

                async def retrying() -> bool:
                    return consumer.stats.infra_retries >= 6

                await eventually(retrying, timeout=30)
                assert await topology.depth(topology.names.dead_letter_queue) == 0
                proxy.restore()

                async def all_applied() -> bool:
                    return consumer.applied == 1 + len(during)

                await eventually(all_applied, timeout=30)
                assert consumer.dead_lettered == 0
                assert consumer.stats.requeued == 0
        finally:
            await proxied.dispose()
    assert sorted(await effect_ids(engine)) == sorted(e.id for e in first + during)
    assert await topology.depth(topology.names.dead_letter_queue) == 0
    assert await topology.depth(queue) == 0


async def test_a_rejected_event_is_dead_lettered_at_once_and_the_rest_applied(
    engine: AsyncEngine, topology: Topology
) -> None:
    queue = await topology.declare("consumer", ["job.progress"], delivery_limit=5)
    calls: list[uuid.UUID] = []
    refused: set[uuid.UUID] = set()

    async def handler(conn: AsyncConnection, batch: Sequence[Received]) -> None:
        calls.extend(r.envelope.id for r in batch)
        for r in batch:
            if r.envelope.id in refused:
                raise Rejected(r.envelope.id, "cannot be applied")
        await write_effects(conn, batch)

    payloads = [progress(v) for v in (10, 20, 30)]
    envelopes = [Envelope.wrap(p, source="gpu-worker/w1") for p in payloads]
    refused.add(envelopes[1].id)
    for envelope in envelopes:
        await topology.broker.publish(envelope, "job.progress")
    async with consuming(engine, topology, queue, handler) as consumer:

        async def settled() -> bool:
            return consumer.applied == 2 and consumer.stats.rejected == 1

        await eventually(settled)
    dead = await topology.drain(topology.names.dead_letter_queue)
    assert [m.message_id for m in dead] == [str(envelopes[1].id)]
    # Rejected on its first delivery: never requeued to be tried again.
    assert consumer.stats.requeued == 0
    assert sorted(await effect_ids(engine)) == sorted([envelopes[0].id, envelopes[2].id])


# ------------------------------------------------------------------------------- outbox order


async def add_interleaved(engine: AsyncEngine, subjects: int, per_subject: int) -> None:
    """`per_subject` events for each of `subjects` jobs, written one transaction per event and
    interleaved across jobs, each numbered by the outbox (its per-job sequence number)."""
    outbox = Outbox(OUTBOX, source="order-tests", sequences=SEQUENCES)
    jobs = [uuid.uuid4() for _ in range(subjects)]
    for _ in range(per_subject):
        for job in jobs:
            async with engine.begin() as conn:
                await outbox.add(conn, status_changed(job))


def adjacent_reorders(bodies: Sequence[bytes]) -> int:
    last: dict[str, int] = {}
    reordered = 0
    for body in bodies:
        envelope = json.loads(body)
        subject, seq = envelope["subject"], envelope["sequence"]
        if seq < last.get(subject, 0):
            reordered += 1
        last[subject] = max(seq, last.get(subject, 0))
    return reordered


async def test_two_relays_never_reorder_the_events_of_one_job(
    engine: AsyncEngine, topology: Topology, listen_dsn: str
) -> None:
    """Two relays (two replicas); the one publishing dies a quarter of the way through and the
    other takes over. What a consumer keeps (first delivery of each event id, as an inbox does:
    rows published but not yet deleted when the first died go out again) is in order per job."""
    queue = await topology.declare("probe", ["job.status_changed"])
    await add_interleaved(engine, subjects=10, per_subject=40)
    relays = [
        OutboxRelay(
            dsn=listen_dsn,
            table=OUTBOX,
            broker=topology.broker,
            channel=NOTIFY_CHANNEL,
            batch_size=25,
            poll_interval=0.05,
        )
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:

        async def some_published() -> bool:
            return sum(r.stats.published for r in relays) >= 100

        await eventually(some_published, timeout=60)
        [leader] = [i for i, r in enumerate(relays) if r.is_leader]
        tasks[leader].cancel()  # its connection closes, the lock with it
        await asyncio.gather(tasks[leader], return_exceptions=True)

        async def drained() -> bool:
            async with engine.connect() as conn:
                left = await conn.execute(sa.select(sa.func.count()).select_from(OUTBOX))
                return left.scalar_one() == 0

        await eventually(drained, timeout=60)
        assert relays[1 - leader].stats.published > 0, "the standby took over"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    firsts: dict[str, bytes] = {}
    for m in await topology.drain(queue):
        firsts.setdefault(m.message_id or "", m.body)
    assert len(firsts) == 400
    assert adjacent_reorders(list(firsts.values())) == 0


class _FlakyBroker:
    """Passes publishes through to a real broker, failing the `fail_at`-th one (1-based)."""

    def __init__(self, broker: Broker, fail_at: int) -> None:
        self._broker = broker
        self._fail_at = fail_at
        self.calls = 0

    async def publish_raw(self, body: bytes, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls == self._fail_at:
            raise ConnectionError("lost the channel for this one")
        await self._broker.publish_raw(body, **kwargs)


async def test_a_partly_failed_batch_does_not_reorder_a_job(
    engine: AsyncEngine, topology: Topology, listen_dsn: str
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    await add_interleaved(engine, subjects=1, per_subject=6)
    flaky = _FlakyBroker(topology.broker, fail_at=3)
    relay = OutboxRelay(
        dsn=listen_dsn,
        table=OUTBOX,
        broker=flaky,  # type: ignore[arg-type]
        channel=NOTIFY_CHANNEL,
        poll_interval=0.01,
    )
    async with relay:
        assert await relay.relay_once() == 2  # the third failed; the rest waits behind it
        assert relay.stats.failures == 1
        assert await relay.relay_once() == 4
    messages = await topology.drain(queue)
    assert [json.loads(m.body)["sequence"] for m in messages] == [1, 2, 3, 4, 5, 6]


async def test_a_relay_stands_by_while_another_holds_the_lock(
    engine: AsyncEngine, topology: Topology, listen_dsn: str
) -> None:
    await topology.declare("probe", ["job.status_changed"])
    await add_interleaved(engine, subjects=1, per_subject=2)
    relay = OutboxRelay(
        dsn=listen_dsn,
        table=OUTBOX,
        broker=topology.broker,
        channel=NOTIFY_CHANNEL,
    )
    async with relay:
        async with engine.begin() as conn:
            key = sa.func.hashtext(f"outbox-relay:{OUTBOX.fullname}")
            assert (await conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key)))).scalar()
            assert await relay.relay_once() == 0
            assert relay.stats.standby == 1
        assert await relay.relay_once() == 2
