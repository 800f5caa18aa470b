"""The outbox relay: publishes what writers staged in the outbox (messaging.outbox), with
publisher confirms.

The relay holds one connection of its own (not a pooled one): it LISTENs there for the NOTIFY a
statement trigger on the outbox table fires (delivered at commit, so it costs the writer no extra
round trip), polls as a fallback, and reads and deletes rows on it with plain driver statements.
A row is deleted only once the broker confirmed it.

Order: events about one subject (a job) reach the broker in the order they were written.
- Several relays may run (one per replica), but only one publishes: the relay that holds a
  PostgreSQL session advisory lock on the table. It keeps the lock as long as its connection
  lives; the others stand by, trying it at each wake-up, and one takes over when the holder's
  connection ends (the server releases the lock; TCP keepalives bound how long a dead client's
  session can keep it). (SKIP LOCKED alone let two relays interleave their batches.)
- Within a batch, the rows of one subject are published one after the other, each after the
  broker confirmed the previous one; different subjects go in parallel. When a publish fails, the
  subject's later rows of the batch are not sent: they go after it, in the next batch.
- An outbox with a sequences table numbers each subject's events (`sequence`, a CloudEvents
  extension) as it stages them, so a consumer can also drop a stale status it receives late.

A batch costs two round trips (read, delete) and no transaction: only the lock holder touches the
rows, and a crash between the publish and the delete publishes the row again (at least once).
"""

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import asyncpg
import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.sql.compiler import SQLCompiler

from messaging.broker import Broker, PublishFailure, Unroutable

log = structlog.get_logger(__name__)


def _subject(body: bytes) -> str | None:
    try:
        subject = json.loads(body).get("subject")
    except (ValueError, AttributeError):
        return None
    return subject if isinstance(subject, str) else None


@dataclass
class RelayStats:
    published: int = 0
    unroutable: int = 0
    failures: int = 0
    # Batches skipped because another relay held the lock.
    standby: int = 0


# Server-side keepalives on the relay's connection: if the relay's host vanishes, the server drops
# its session (and the lock) within about 25 s, and a standby relay takes over.
_KEEPALIVES = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}

# The errors that mean the database or the network failed (the relay reconnects), not a bug.
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


_DIALECT = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]


def _driver_sql(stmt: sa.ClauseElement, *params: str) -> str:
    """`stmt` as asyncpg SQL whose positional parameters are `params`, in that order."""
    compiled = cast(SQLCompiler, stmt.compile(dialect=_DIALECT))
    if tuple(compiled.positiontup or ()) != params:
        raise ValueError(f"parameters {compiled.positiontup} are not {params}")
    return str(compiled.string)


class OutboxRelay:
    def __init__(
        self,
        *,
        dsn: str,
        table: sa.Table,
        broker: Broker,
        channel: str,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        unroutable_backoff: timedelta = timedelta(seconds=5),
        delete_linger: float = 0.02,
        max_published_now: int = 4,
    ) -> None:
        self._dsn = dsn
        self._delete_linger = delete_linger
        # Rows the broker confirmed that are not deleted yet (run() deletes them with its next
        # read, or after `delete_linger` without one).
        self._confirmed: list[int] = []
        # Rows handed over by publish_now() while they are being published, and the publishing
        # task of each of their subjects: the relay's reads skip those rows and publish a
        # subject's later rows only after them.
        self._held: set[int] = set()
        self._held_chains: dict[object, asyncio.Task[bool]] = {}
        # The highest id the relay's reads have returned: publish_now() leaves every row up to it
        # to the relay (a row a read has seen may be being published, or published and deleted
        # already; one it skipped is still in the table for its next read).
        self._read_up_to = 0
        self._background: set[asyncio.Task[bool]] = set()
        self._max_published_now = max_published_now
        self._broker = broker
        self._channel = channel
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._unroutable_backoff = unroutable_backoff
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._leader = False
        self.stats = RelayStats()
        # One lock per outbox table: relays of one service exclude each other, not other services.
        self.lock_name = f"outbox-relay:{table.fullname}"
        t = table
        ids = sa.bindparam("ids", type_=pg.ARRAY(sa.BigInteger))
        listed = t.c.id == sa.any_(ids)
        skipped = sa.bindparam("skip", type_=pg.ARRAY(sa.BigInteger))
        # The rows confirmed by the previous batch deleted and the next batch read, in one
        # statement (the read does not see the delete: same snapshot, hence the ALL filter), rows
        # being published by publish_now() skipped.
        self._take_sql = _driver_sql(
            sa.select(
                t.c.id, t.c.event_id, t.c.event_type, t.c.routing_key, t.c.body, t.c.must_route
            )
            .add_cte(sa.delete(t).where(listed).returning(t.c.id).cte("gone"))
            .where(
                t.c.available_at <= sa.func.now(),
                t.c.id != sa.all_(ids),
                t.c.id != sa.all_(skipped),
            )
            .order_by(t.c.id)
            .limit(sa.bindparam("limit", type_=sa.Integer)),
            "ids",
            "skip",
            "limit",
        )
        self._delete_sql = _driver_sql(sa.delete(t).where(listed), "ids")
        self._defer_sql = _driver_sql(
            sa.update(t)
            .where(listed)
            .values(
                attempts=t.c.attempts + sa.literal_column("1"),
                available_at=sa.func.now() + sa.bindparam("backoff", type_=sa.Interval),
            ),
            "backoff",
            "ids",
        )

    @property
    def is_leader(self) -> bool:
        """This relay holds the lock (it is the one that publishes)."""
        return self._leader and self._conn is not None and not self._conn.is_closed()

    async def run(self) -> None:
        """Relay until cancelled. Survives database and broker outages by retrying.

        A batch's confirmed rows are deleted by the statement that reads the next batch when one
        follows within `delete_linger` (events come in bursts: a job's creation, its claim), and
        on their own otherwise; a crash in between publishes them again (at least once)."""
        try:
            while True:
                try:
                    moved = await self._relay_batch(delete_now=False)
                    if moved >= self._batch_size:
                        continue
                    if self._confirmed:
                        if await self._woken(self._delete_linger):
                            continue
                        await self._delete_confirmed()
                except _DB_ERRORS as exc:
                    log.warning("outbox.relay_db_error", error=str(exc))
                    await self.close()
                    await asyncio.sleep(self._poll_interval)
                await self._woken(self._poll_interval)
        finally:
            await self.close()

    async def _woken(self, timeout: float) -> bool:
        """Wait up to `timeout` for a NOTIFY; True (and the wake consumed) if one came."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        woken = self._wake.is_set()
        self._wake.clear()
        return woken

    async def _delete_confirmed(self) -> None:
        if self._confirmed and self._conn is not None and not self._conn.is_closed():
            # Taken before the await: publish_now() may confirm more rows meanwhile.
            deleting, self._confirmed = self._confirmed, []
            try:
                await self._conn.execute(self._delete_sql, deleting)
            except BaseException:
                self._confirmed.extend(deleting)
                raise

    def publish_now(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Publish rows this process has just committed, without waiting for the NOTIFY and the
        read: the rows must be about subjects that had no earlier events (a new job), so that
        nothing of theirs can be waiting in the table. Each row needs the outbox columns (`id`,
        `event_id`, `event_type`, `routing_key`, `body`, `must_route`).

        Only the leading relay does it (elsewhere the leader reads the rows as usual), and only
        while fewer than `max_published_now` such subjects are in flight: under load the relay's
        read takes them in batches, which costs less per row than a publishing task per subject.
        A row the broker confirms is deleted with the relay's next read; one it does not stays in
        the table for the next read, and the subject's later rows are published only after it.
        Returns at once, True when it started publishing: that runs in a task of its own."""
        if not rows or not self.is_leader or len(self._held_chains) >= self._max_published_now:
            return False
        started = False
        chains: dict[object, list[Mapping[str, Any]]] = {}
        for r in rows:
            if r["id"] <= self._read_up_to or r["id"] in self._held:
                continue  # the relay's own read got there first
            chains.setdefault(_subject(r["body"]) or ("row", r["id"]), []).append(r)
        for subject, chain in chains.items():
            if subject in self._held_chains:
                continue  # not a new subject after all: the relay keeps its order
            self._held.update(r["id"] for r in chain)
            task = asyncio.create_task(self._publish_held(subject, chain))
            self._held_chains[subject] = task
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            started = True
        return started

    async def _publish_held(self, subject: object, rows: Sequence[Mapping[str, Any]]) -> bool:
        """publish_now()'s chain; True when every row was confirmed."""
        try:
            results = await self._publish_chain(rows)
            for row, result in results:
                if result is None:
                    self._confirmed.append(row["id"])
                    self.stats.published += 1
            # Anything else (unroutable, a broker failure) stays for the relay's next read,
            # which handles it as any row of the table.
            return len(results) == len(rows) and all(r is None for _, r in results)
        finally:
            self._held.difference_update(r["id"] for r in rows)
            if self._held_chains.get(subject) is asyncio.current_task():
                del self._held_chains[subject]

    async def __aenter__(self) -> "OutboxRelay":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the relay's connection (which gives its lock up). What publish_now() is still
        publishing stops; those rows stay in the table for the next leader."""
        for task in list(self._background):
            task.cancel()
        conn, self._conn, self._leader = self._conn, None, False
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (*_DB_ERRORS, TimeoutError):
                conn.terminate()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        self._conn, self._leader = None, False
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "outbox-relay", **_KEEPALIVES}
        )
        try:
            await conn.add_listener(self._channel, lambda *_: self._wake.set())
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        return conn

    async def _publish_chain(
        self, rows: Sequence[Any], *, after: "asyncio.Task[bool] | None" = None
    ) -> list[tuple[Any, object]]:
        """Publish one subject's rows in order, each after the previous one was confirmed; stop at
        the first failure (the rest wait for the next batch, behind the failed one). `after`: the
        subject's rows publish_now() is publishing; these go only once all of those went."""
        results: list[tuple[Any, object]] = []
        if after is not None:
            try:
                went = await asyncio.shield(after)
            except asyncio.CancelledError:
                if not after.cancelled():
                    raise  # this chain itself is cancelled
                went = False
            if not went:
                return results  # not attempted: they wait behind the unconfirmed row
        for r in rows:
            try:
                await self._broker.publish_raw(
                    r["body"],
                    routing_key=r["routing_key"],
                    message_id=str(r["event_id"]),
                    event_type=r["event_type"],
                    # Broadcasts nobody subscribes to yet are dropped by the broker.
                    mandatory=r["must_route"],
                )
                result: object = None
            except Exception as exc:
                result = exc
            results.append((r, result))
            if result is not None and not isinstance(result, Unroutable):
                break
        return results

    async def relay_once(self) -> int:
        """Publish one batch and delete what the broker confirmed. Returns how many rows it
        handled (published or deferred); 0 when there was nothing to do or another relay is
        publishing. Database errors propagate (the caller closes the connection and retries)."""
        return await self._relay_batch(delete_now=True)

    async def _relay_batch(self, *, delete_now: bool) -> int:
        conn = await self._connection()
        if not self._leader:
            self._leader = bool(
                await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self.lock_name)
            )
            if not self._leader:
                self.stats.standby += 1
                return 0
            log.info("outbox.relay_leading", lock=self.lock_name)
        # Taken before the await: publish_now() may confirm more rows meanwhile.
        deleting, self._confirmed = self._confirmed, []
        try:
            fetched = await conn.fetch(self._take_sql, deleting, list(self._held), self._batch_size)
        except BaseException:
            self._confirmed.extend(deleting)
            raise
        if fetched:
            self._read_up_to = max(self._read_up_to, fetched[-1]["id"])  # read in id order
        # publish_now() may have taken some of them while the read was on its way: they are in
        # flight, or already confirmed (and wait for the next read to delete them).
        taken = self._held.union(self._confirmed)
        rows = [r for r in fetched if r["id"] not in taken]
        if not rows:
            return 0
        chains: dict[object, list[Any]] = {}
        for r in rows:
            # Rows without a subject have no order to keep: each is its own chain.
            key = _subject(r["body"]) or ("row", r["id"])
            chains.setdefault(key, []).append(r)
        outcomes = await asyncio.gather(
            *(self._publish_chain(c, after=self._held_chains.get(k)) for k, c in chains.items())
        )
        done: list[int] = []
        deferred: list[int] = []
        for row, result in (pair for chain in outcomes for pair in chain):
            if result is None:
                done.append(row["id"])
            elif isinstance(result, Unroutable):
                # Only must_route rows are published as mandatory, so only they come back.
                self.stats.unroutable += 1
                log.error(
                    "outbox.unroutable",
                    event_type=row["event_type"],
                    routing_key=row["routing_key"],
                )
                deferred.append(row["id"])
            elif isinstance(result, PublishFailure):
                self.stats.failures += 1
                log.warning(
                    "outbox.publish_failed", event_type=row["event_type"], error=repr(result)
                )
            else:
                assert isinstance(result, BaseException)
                raise result
        self._confirmed.extend(done)
        if delete_now:
            await self._delete_confirmed()
        if deferred:
            await conn.execute(self._defer_sql, self._unroutable_backoff, deferred)
        self.stats.published += len(done)
        if len(done) + len(deferred) < len(rows):
            # The broker is unreachable: let the robust connection recover before the next batch.
            await asyncio.sleep(self._poll_interval)
        return len(done) + len(deferred)
