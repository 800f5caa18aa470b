"""Transactional outbox: an event is written in the same transaction as the state change it
announces, and a relay publishes it afterwards with publisher confirms.

The relay wakes on a PostgreSQL NOTIFY fired by a statement trigger on the outbox table (delivered
at commit, so it costs the writer no extra round trip) and polls as a fallback. A row is deleted
only once the broker confirmed it.

Order: events about one subject (a job) reach the broker in the order they were written.
- Several relays may run (one per replica), but only one publishes at a time: each batch runs in a
  transaction holding a PostgreSQL advisory lock on the table; another relay that cannot take it
  stands by until its next wake-up. (SKIP LOCKED alone let two relays interleave their batches.)
- Within a batch, the rows of one subject are published one after the other, each after the
  broker confirmed the previous one; different subjects go in parallel. When a publish fails, the
  subject's later rows of the batch are not sent: they go after it, in the next batch.
- The producer may give each event a `sequence` (CloudEvents extension) that increases per
  subject, so a consumer can also drop a stale status it receives late.
"""

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import Envelope, EventPayload
from messaging.broker import Broker, PublishFailure, Unroutable
from messaging.transactions import Begin

log = structlog.get_logger(__name__)


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("routing_key", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("must_route", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def notify_trigger_sql(schema: str, channel: str) -> tuple[list[str], list[str]]:
    """(upgrade, downgrade) DDL for the trigger that wakes the relay after an outbox insert."""
    fn = f"{schema}.outbox_notify"
    upgrade = [
        f"""CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$""",
        f"""CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox
        FOR EACH STATEMENT EXECUTE FUNCTION {fn}()""",
    ]
    downgrade = [
        f"DROP TRIGGER IF EXISTS outbox_notify ON {schema}.outbox",
        f"DROP FUNCTION IF EXISTS {fn}()",
    ]
    return upgrade, downgrade


def outbox_row(
    payload: EventPayload, *, source: str, sequence: int | None = None
) -> dict[str, Any]:
    envelope = Envelope.wrap(payload, source=source, sequence=sequence)
    return {
        "event_id": envelope.id,
        "event_type": envelope.type,
        "routing_key": payload.routing_key(),
        "body": envelope.model_dump_json().encode(),
        "must_route": payload.must_route,
    }


class Outbox:
    """Adds events to the outbox inside the caller's transaction (never commits)."""

    def __init__(self, table: sa.Table, *, source: str) -> None:
        self.table = table
        self.source = source

    async def add(
        self,
        conn: AsyncConnection,
        *payloads: EventPayload,
        sequences: Sequence[int | None] | None = None,
    ) -> None:
        """Stage `payloads`; `sequences` (one per payload) become their envelopes' `sequence`."""
        if not payloads:
            return
        if sequences is not None and len(sequences) != len(payloads):
            raise ValueError("one sequence per payload")
        seqs = sequences if sequences is not None else [None] * len(payloads)
        rows = [
            outbox_row(p, source=self.source, sequence=n)
            for p, n in zip(payloads, seqs, strict=True)
        ]
        await conn.execute(sa.insert(self.table), rows)


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


class OutboxRelay:
    def __init__(
        self,
        *,
        begin: Begin,
        table: sa.Table,
        broker: Broker,
        listen_dsn: str,
        channel: str,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        unroutable_backoff: timedelta = timedelta(seconds=5),
    ) -> None:
        self._begin = begin
        self._table = table
        self._broker = broker
        self._listen_dsn = listen_dsn
        self._channel = channel
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._unroutable_backoff = unroutable_backoff
        self._wake = asyncio.Event()
        self.stats = RelayStats()
        # One lock per outbox table: relays of one service exclude each other, not other services.
        lock_key = sa.func.hashtext(f"outbox-relay:{table.fullname}")
        # The lock and the batch in one round trip: the lock (a one-row subquery, evaluated once)
        # joined with the oldest available rows, read only when it was taken. Always one row at
        # least: `locked` false means another relay is publishing; a NULL id, nothing to do.
        lock = sa.select(sa.func.pg_try_advisory_xact_lock(lock_key).label("locked")).subquery(
            "relay_lock"
        )
        t = table
        batch = (
            sa.select(
                t.c.id, t.c.event_id, t.c.event_type, t.c.routing_key, t.c.body, t.c.must_route
            )
            .where(lock.c.locked, t.c.available_at <= sa.func.now())
            .order_by(t.c.id)
            .limit(batch_size)
            .with_for_update(skip_locked=True)
            .lateral("batch")
        )
        self._take_batch = (
            sa.select(lock.c.locked, batch)
            .select_from(lock.outerjoin(batch, sa.true()))
            .order_by(batch.c.id)
        )

    async def run(self) -> None:
        """Relay until cancelled. Survives database and broker outages by retrying."""
        listener: asyncpg.Connection | None = None
        try:
            while True:
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                try:
                    moved = await self.relay_once()
                except (OSError, asyncpg.PostgresError, sa.exc.DBAPIError) as exc:
                    log.warning("outbox.relay_db_error", error=str(exc))
                    moved = 0
                    await asyncio.sleep(self._poll_interval)
                if moved >= self._batch_size:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                self._wake.clear()
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn = await asyncpg.connect(self._listen_dsn)
            await conn.add_listener(self._channel, lambda *_: self._wake.set())
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("outbox.listen_failed", error=str(exc))
            return None
        return conn

    async def _publish_chain(self, rows: Sequence[Any]) -> list[tuple[Any, object]]:
        """Publish one subject's rows in order, each after the previous one was confirmed; stop at
        the first failure (the rest wait for the next batch, behind the failed one)."""
        results: list[tuple[Any, object]] = []
        for r in rows:
            try:
                await self._broker.publish_raw(
                    r.body,
                    routing_key=r.routing_key,
                    message_id=str(r.event_id),
                    event_type=r.event_type,
                    # Broadcasts nobody subscribes to yet are dropped by the broker.
                    mandatory=r.must_route,
                )
                result: object = None
            except Exception as exc:
                result = exc
            results.append((r, result))
            if result is not None and not isinstance(result, Unroutable):
                break
        return results

    async def relay_once(self) -> int:
        """Publish one batch. Returns how many rows it handled (published or deferred); 0 when
        there was nothing to do or another relay is publishing."""
        async with self._begin() as conn:
            taken = (await conn.execute(self._take_batch)).all()
            if not taken[0].locked:
                self.stats.standby += 1
                return 0
            rows = [r for r in taken if r.id is not None]
            if not rows:
                return 0
            chains: dict[object, list[Any]] = {}
            for r in rows:
                # Rows without a subject have no order to keep: each is its own chain.
                key = _subject(r.body) or ("row", r.id)
                chains.setdefault(key, []).append(r)
            outcomes = await asyncio.gather(*(self._publish_chain(c) for c in chains.values()))
            done: list[int] = []
            deferred: list[int] = []
            for row, result in (pair for chain in outcomes for pair in chain):
                if result is None:
                    done.append(row.id)
                elif isinstance(result, Unroutable):
                    # Only must_route rows are published as mandatory, so only they come back.
                    self.stats.unroutable += 1
                    log.error(
                        "outbox.unroutable", event_type=row.event_type, routing_key=row.routing_key
                    )
                    deferred.append(row.id)
                elif isinstance(result, PublishFailure):
                    self.stats.failures += 1
                    log.warning(
                        "outbox.publish_failed", event_type=row.event_type, error=repr(result)
                    )
                else:
                    assert isinstance(result, BaseException)
                    raise result
            t = self._table
            if done:
                await conn.execute(sa.delete(t).where(t.c.id.in_(done)))
            if deferred:
                await conn.execute(
                    sa.update(t)
                    .where(t.c.id.in_(deferred))
                    .values(
                        attempts=t.c.attempts + 1,
                        available_at=sa.func.now() + self._unroutable_backoff,
                    )
                )
            self.stats.published += len(done)
        if len(done) + len(deferred) < len(rows):
            # The broker is unreachable: let the robust connection recover before the next batch.
            await asyncio.sleep(self._poll_interval)
        return len(done) + len(deferred)
