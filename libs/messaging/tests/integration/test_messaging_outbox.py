"""The outbox relay: confirmed publishing, unroutable events, NOTIFY wake-ups, concurrent relays."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from messaging_testing import (
    NOTIFY_CHANNEL,
    OUTBOX,
    Topology,
    eventually,
    job_created,
    status_changed,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import Envelope, EventPayload, payload_of
from messaging.broker import Broker
from messaging.outbox import Outbox, OutboxRelay

pytestmark = pytest.mark.integration

SOURCE = "messaging-tests"


async def add(engine: AsyncEngine, *payloads: EventPayload) -> None:
    async with engine.begin() as conn:
        await Outbox(OUTBOX, source=SOURCE).add(conn, *payloads)


async def outbox_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id))).all())


MakeRelay = Callable[..., OutboxRelay]


@pytest.fixture
async def make_relay(listen_dsn: str) -> AsyncIterator[MakeRelay]:
    """Relays on the test database; each one's connection (and lock) is closed at the end."""
    made: list[OutboxRelay] = []

    def make(broker: Broker, **kwargs: Any) -> OutboxRelay:
        relay = OutboxRelay(
            dsn=listen_dsn, table=OUTBOX, broker=broker, channel=NOTIFY_CHANNEL, **kwargs
        )
        made.append(relay)
        return relay

    yield make
    for relay in made:
        await relay.close()


@contextlib.asynccontextmanager
async def running(*relays: OutboxRelay) -> Any:
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if not isinstance(result, asyncio.CancelledError):
                raise AssertionError(f"relay stopped with {result!r}")


async def test_rows_are_published_with_confirms_then_deleted(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    payloads = [status_changed() for _ in range(3)]
    await add(engine, *payloads)
    rows = await outbox_rows(engine)
    assert len(rows) == 3

    relay = make_relay(topology.broker)
    assert await relay.relay_once() == 3
    assert relay.stats.published == 3
    assert await outbox_rows(engine) == []

    messages = await topology.drain(queue)
    assert {m.message_id for m in messages} == {str(r.event_id) for r in rows}
    for message in messages:
        envelope = Envelope.model_validate_json(message.body)
        assert str(envelope.id) == message.message_id
        assert message.type == envelope.type == "job.status_changed"
        assert envelope.source == SOURCE
        assert message.delivery_mode == 2  # persistent
        assert payload_of(envelope) in payloads


class _FailsFor(Broker):
    """The real broker, except that publishing the given event ids fails (a lost connection)."""

    def __init__(self, real: Broker, failing: set[str]) -> None:
        self.__dict__.update(real.__dict__)
        self.failing = failing

    async def publish_raw(self, body: bytes, **kwargs: Any) -> None:
        if kwargs["message_id"] in self.failing:
            raise ConnectionError("connection reset")
        await super().publish_raw(body, **kwargs)


async def test_a_failed_publish_keeps_the_row_for_the_next_round(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    await add(engine, status_changed(), status_changed())
    first, second = await outbox_rows(engine)

    flaky = _FailsFor(topology.broker, {str(second.event_id)})
    relay = make_relay(flaky, poll_interval=0.01)
    assert await relay.relay_once() == 1
    assert relay.stats.failures == 1
    [left] = await outbox_rows(engine)
    assert left.event_id == second.event_id
    assert left.attempts == 0, "a broker failure is not the event's fault"

    # The relay's process ends (its connection and lock with it); the next one sends the rest.
    await relay.close()
    assert await make_relay(topology.broker).relay_once() == 1
    assert await outbox_rows(engine) == []
    ids = {m.message_id for m in await topology.drain(queue)}
    assert ids == {str(first.event_id), str(second.event_id)}


async def test_unroutable_must_route_event_stays_and_a_broadcast_is_dropped(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    # No queue is bound in this namespace: the must_route event (published as mandatory) comes
    # back; the broadcast is published without `mandatory` and the broker drops it.
    await add(engine, job_created(), status_changed())
    relay = make_relay(topology.broker, unroutable_backoff=timedelta(minutes=1))
    assert await relay.relay_once() == 2
    assert relay.stats.unroutable == 1
    [kept] = await outbox_rows(engine)
    assert kept.event_type == "job.created"
    assert kept.must_route
    assert kept.attempts == 1
    async with engine.connect() as conn:
        later = (await conn.execute(sa.select(OUTBOX.c.available_at > sa.func.now()))).scalar_one()
    assert later, "a deferred row waits for its backoff"
    assert await relay.relay_once() == 0

    # Once a work queue binds the key (a worker pool came up), the event goes out.
    queue = await topology.declare("work", ["job.created.embedding.local"])
    async with engine.begin() as conn:
        await conn.execute(sa.update(OUTBOX).values(available_at=sa.func.now()))
    assert await relay.relay_once() == 1
    assert await outbox_rows(engine) == []
    [message] = await topology.drain(queue)
    assert message.message_id == str(kept.event_id)


async def test_notify_wakes_the_relay_long_before_its_poll(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    relay = make_relay(topology.broker, poll_interval=5)
    await add(engine, status_changed())
    async with running(relay):
        # The first round runs after the listener is up; after it the relay sleeps on NOTIFY.
        await eventually(lambda: _published(relay, 1))
        loop = asyncio.get_running_loop()
        delays = []
        for n in (2, 3):
            started = loop.time()
            await add(engine, status_changed())
            await eventually(lambda n=n: _published(relay, n), timeout=4, interval=0.005)
            delays.append(loop.time() - started)
    print(f"relay woken after {[round(d * 1000) for d in delays]} ms (poll interval 5 s)")
    assert max(delays) < 1.0, f"woken after {delays} s with a 5 s poll interval"
    assert len(await topology.drain(queue)) == 3


async def _leading(relay: OutboxRelay) -> bool:
    return relay.is_leader


async def _published(relay: OutboxRelay, n: int) -> bool:
    return relay.stats.published >= n


async def test_two_relays_publish_each_row_exactly_once(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    total = 400
    await add(engine, *(status_changed() for _ in range(total)))
    expected = {str(r.event_id) for r in await outbox_rows(engine)}
    relays = [make_relay(topology.broker, batch_size=10, poll_interval=0.05) for _ in range(2)]

    async def drained() -> bool:
        return not await outbox_rows(engine)

    async with running(*relays):
        await eventually(drained, timeout=30)
    assert sum(r.stats.published for r in relays) == total
    messages = await topology.drain(queue)
    ids = [m.message_id for m in messages]
    assert len(ids) == total
    assert set(ids) == expected


async def test_outbox_add_is_part_of_the_callers_transaction(engine: AsyncEngine) -> None:
    """Rolled back with the state change it announces: nothing is published for a failed write."""

    async def failing_write() -> None:
        async with engine.begin() as conn:
            await Outbox(OUTBOX, source=SOURCE).add(conn, status_changed(uuid.uuid4()))
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        await failing_write()
    assert await outbox_rows(engine) == []


async def test_the_leader_keeps_its_lock_and_a_standby_takes_over_when_its_session_ends(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    leader, standby = make_relay(topology.broker), make_relay(topology.broker)
    await add(engine, status_changed())
    assert await leader.relay_once() == 1
    assert leader.is_leader
    # Between batches the leader keeps the lock: the other relay stands by, even with work.
    await add(engine, status_changed())
    assert await standby.relay_once() == 0
    assert standby.stats.standby == 1
    assert not standby.is_leader

    # The leader's session ends (its host died; the server terminated the backend).
    async with engine.connect() as conn:
        pid = (
            await conn.execute(
                sa.text(
                    # Advisory locks are per database: other tests' relays hold the same name.
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND objid::int = hashtext(:name) AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"name": leader.lock_name},
            )
        ).scalar_one()
        assert (await conn.execute(sa.select(sa.func.pg_terminate_backend(pid)))).scalar()

    async def took_over() -> bool:
        return await standby.relay_once() == 1

    await eventually(took_over, timeout=10)
    assert standby.is_leader
    assert len(await topology.drain(queue)) == 2
    # The old leader finds its connection gone, reconnects, and stands by: a new session is not
    # the leader until it takes the lock.
    await add(engine, status_changed())
    assert await leader.relay_once() == 0
    assert not leader.is_leader
    assert await standby.relay_once() == 1


async def test_a_batch_is_deleted_by_the_read_of_the_next_or_after_the_linger(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    slow = make_relay(topology.broker, poll_interval=5, delete_linger=30)
    async with running(slow):
        # Let it find the outbox empty and wait for a NOTIFY (it then reads once per wake).
        await eventually(lambda: _leading(slow))
        await asyncio.sleep(0.2)
        await add(engine, status_changed())
        await eventually(lambda: _published(slow, 1))
        [first] = await outbox_rows(engine)  # confirmed, its delete waits for the next read
        await add(engine, status_changed())
        await eventually(lambda: _published(slow, 2))
        [second] = await outbox_rows(engine)
        assert second.id != first.id, "the read of the second batch deleted the first"
    assert len(await topology.drain(queue)) == 2

    quick = make_relay(topology.broker, poll_interval=5, delete_linger=0.01)
    async with running(quick):
        # The row the stopped relay left (published, not deleted) goes out again: at least once.
        await eventually(lambda: _published(quick, 1))

        async def drained() -> bool:
            return not await outbox_rows(engine)

        # Nothing follows: the linger runs out and the confirmed row is deleted on its own.
        await eventually(drained, timeout=2)
    assert [m.message_id for m in await topology.drain(queue)] == [str(second.event_id)]


# ------------------------------------------------------------ publish_now: a new subject's rows


class _Gated:
    """The real broker, except that the first publish waits for `gate` (and then fails, with
    `fail`): a publish in flight, held as long as the test wants."""

    def __init__(self, broker: Broker, *, fail: bool = False) -> None:
        self._broker = broker
        self._fail = fail
        self.gate = asyncio.Event()
        self._first = True

    async def publish_raw(self, body: bytes, **kwargs: Any) -> None:
        if self._first:
            self._first = False
            await self.gate.wait()
            if self._fail:
                raise ConnectionError("lost the channel for this one")
        await self._broker.publish_raw(body, **kwargs)


def _mappings(rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in rows]


async def _collect(topology: Topology, queue: str, n: int) -> list[Any]:
    got: list[Any] = []

    async def enough() -> bool:
        got.extend(await topology.drain(queue))
        return len(got) >= n

    await eventually(enough, timeout=10)
    return got


async def test_publish_now_sends_committed_rows_without_a_read_and_the_next_read_deletes_them(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    relay = make_relay(topology.broker, poll_interval=5)
    assert await relay.relay_once() == 0  # now leading, the outbox empty
    job = uuid.uuid4()
    await add(engine, status_changed(job), status_changed(job))
    rows = await outbox_rows(engine)

    assert relay.publish_now(_mappings(rows))  # no read, no run(): only this can publish them
    messages = await _collect(topology, queue, 2)
    assert [m.message_id for m in messages] == [str(r.event_id) for r in rows]
    await eventually(lambda: _published(relay, 2))
    assert len(await outbox_rows(engine)) == 2, "confirmed rows wait for the next read"
    assert await relay.relay_once() == 0, "the read skips them, and deletes them"
    assert await outbox_rows(engine) == []
    assert await topology.drain(queue) == [], "published once"


async def test_publish_now_leaves_rows_the_relay_has_read_even_once_they_are_deleted(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    """A writer's publish_now can come late (a busy event loop): by then the relay may have
    read, published and deleted its rows. They are not published again."""
    queue = await topology.declare("probe", ["job.status_changed"])
    relay = make_relay(topology.broker, poll_interval=5)
    assert await relay.relay_once() == 0
    await add(engine, status_changed(uuid.uuid4()))
    rows = _mappings(await outbox_rows(engine))
    assert await relay.relay_once() == 1
    assert await outbox_rows(engine) == [], "published and deleted"
    assert not relay.publish_now(rows)
    assert len(await _collect(topology, queue, 1)) == 1
    await asyncio.sleep(0.3)
    assert await topology.drain(queue) == [], "published once"


class _SlowRead:
    """The relay's own connection, except that a read's result is handed over only once `gate`
    is set: a read that saw the rows and comes back late (a busy event loop, a slow database)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.reading = asyncio.Event()
        self.gate = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def fetch(self, *args: Any) -> Any:
        result = await self._conn.fetch(*args)
        self.reading.set()
        await self.gate.wait()
        return result


async def test_a_read_that_returns_after_publish_now_confirmed_its_rows_sends_them_once(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    """The read began before the writer's publish_now() (so it did not skip the row) and came
    back after the broker had confirmed it (so it is no longer in flight): it is not sent again.
    Seen under make test's load as a new job's offer in its work queue twice."""
    queue = await topology.declare("probe", ["job.status_changed"])
    relay = make_relay(topology.broker, poll_interval=5)
    assert await relay.relay_once() == 0
    slow = _SlowRead(relay._conn)
    relay._conn = slow  # type: ignore[assignment]
    await add(engine, status_changed(uuid.uuid4()))
    rows = _mappings(await outbox_rows(engine))
    reading = asyncio.create_task(relay.relay_once())
    await asyncio.wait_for(slow.reading.wait(), 10)  # the read has the row

    assert relay.publish_now(rows)
    await eventually(lambda: _published(relay, 1))
    slow.gate.set()
    assert await asyncio.wait_for(reading, 10) == 0, "the read found nothing left to send"
    assert len(await _collect(topology, queue, 1)) == 1
    await asyncio.sleep(0.3)
    assert await topology.drain(queue) == [], "published once"
    assert relay.stats.published == 1
    assert await relay.relay_once() == 0
    assert await outbox_rows(engine) == [], "the next read deleted it"


async def test_publish_now_on_a_standby_relay_leaves_the_rows_to_the_leader(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    leader, standby = make_relay(topology.broker), make_relay(topology.broker)
    assert await leader.relay_once() == 0
    assert await standby.relay_once() == 0
    assert not standby.is_leader
    await add(engine, status_changed())
    assert not standby.publish_now(_mappings(await outbox_rows(engine)))
    await asyncio.sleep(0.3)
    assert await topology.drain(queue) == []
    assert await leader.relay_once() == 1
    assert len(await _collect(topology, queue, 1)) == 1


async def test_a_read_skips_rows_in_flight_and_sends_the_subjects_later_rows_after_them(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    gated = _Gated(topology.broker)
    relay = make_relay(gated)  # type: ignore[arg-type]
    assert await relay.relay_once() == 0
    job = uuid.uuid4()
    await add(engine, status_changed(job))
    [first] = await outbox_rows(engine)
    assert relay.publish_now(_mappings([first]))  # held at the gate
    assert not relay.publish_now(_mappings([first])), "already in flight"
    await add(engine, status_changed(job))  # a later event of the same job (cancelled at once)
    [_, second] = await outbox_rows(engine)
    reading = asyncio.create_task(relay.relay_once())
    await asyncio.sleep(0.3)
    assert not reading.done(), "the later row waits behind the one in flight"
    assert await topology.drain(queue) == []

    gated.gate.set()
    assert await asyncio.wait_for(reading, 10) == 1
    messages = await _collect(topology, queue, 2)
    assert [m.message_id for m in messages] == [str(first.event_id), str(second.event_id)]
    assert relay.stats.published == 2


async def test_an_unconfirmed_row_from_publish_now_goes_with_the_next_read_before_its_successor(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    gated = _Gated(topology.broker, fail=True)
    relay = make_relay(gated, poll_interval=0.01)  # type: ignore[arg-type]
    assert await relay.relay_once() == 0
    job = uuid.uuid4()
    await add(engine, status_changed(job))
    [first] = await outbox_rows(engine)
    relay.publish_now(_mappings([first]))
    await add(engine, status_changed(job))
    reading = asyncio.create_task(relay.relay_once())
    await asyncio.sleep(0.2)
    gated.gate.set()  # the held publish fails
    assert await asyncio.wait_for(reading, 10) == 0, "its successor was not attempted"
    assert await topology.drain(queue) == []
    assert len(await outbox_rows(engine)) == 2

    assert await relay.relay_once() == 2  # both, in order, from the table
    messages = await _collect(topology, queue, 2)
    rows_order = [json.loads(m.body)["id"] for m in messages]
    assert rows_order[0] == str(first.event_id)
    assert await outbox_rows(engine) == []


async def test_publish_now_leaves_rows_to_the_read_while_enough_subjects_are_in_flight(
    engine: AsyncEngine, topology: Topology, make_relay: MakeRelay
) -> None:
    queue = await topology.declare("probe", ["job.status_changed"])
    gated = _Gated(topology.broker)
    relay = make_relay(gated, max_published_now=1)  # type: ignore[arg-type]
    assert await relay.relay_once() == 0
    await add(engine, status_changed())
    await add(engine, status_changed())
    first, second = await outbox_rows(engine)
    assert relay.publish_now(_mappings([first]))  # in flight, held at the gate
    # One subject is the most in flight: not taken.
    assert not relay.publish_now(_mappings([second]))
    assert await relay.relay_once() == 1, "the read publishes the row publish_now left"
    [m] = await _collect(topology, queue, 1)
    assert m.message_id == str(second.event_id)
    gated.gate.set()
    [m] = await _collect(topology, queue, 1)
    assert m.message_id == str(first.event_id)
