"""Idempotent, batching event consumer that rides out infrastructure outages.

Messages are drained from the queue in batches (one under light load, hundreds under heavy load);
each batch is applied in one transaction together with its inbox rows, then acknowledged.

What happens to a message depends on WHY it was not applied, and the distinction is explicit:

- It cannot be parsed (bad JSON, unknown type, invalid payload): dead-lettered at once.
- Its handler REJECTS it (raises `Rejected`): dead-lettered at once. Only these two outcomes
  dead-letter a message.
- An infrastructure error (`is_infrastructure_error`: the database is unreachable, a connection
  dropped, a serialization conflict...): the message is not the problem. The consumer keeps the
  batch unsettled, stops taking new messages and retries the same batch with exponential back-off
  until it applies. Nothing is nacked, so nothing counts against the queue's delivery limit.
- Any other exception is a bug or an unexpected state: the batch is retried message by message;
  the failing message is requeued (nack), and after the queue's delivery limit the broker
  dead-letters it, so one bad event cannot block the others forever.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from aio_pika.abc import AbstractChannel
from aiormq.abc import AbstractChannel as AmqpChannel
from aiormq.abc import DeliveredMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from messaging.broker import Broker
from messaging.failures import is_infrastructure_error
from messaging.inbox import Inbox
from messaging.received import Received, parse
from messaging.settle import ack, nack, reject, settle
from messaging.transactions import Begin

__all__ = ["Handler", "InboxConsumer", "Received", "Rejected", "is_infrastructure_error", "parse"]

log = structlog.get_logger(__name__)


class Rejected(Exception):
    """Raised by a handler for a message it can never apply: the consumer dead-letters that
    message at once (the rest of the batch is applied without it)."""

    def __init__(self, event_id: UUID, reason: str) -> None:
        super().__init__(f"event {event_id} rejected: {reason}")
        self.event_id = event_id
        self.reason = reason


# A handler may return a value; `on_committed` receives it once the batch's transaction committed.
Handler = Callable[[AsyncConnection, Sequence[Received]], Awaitable[object]]


@dataclass
class ConsumerStats:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    rejected: int = 0
    requeued: int = 0
    infra_retries: int = 0


class InboxConsumer:
    def __init__(
        self,
        *,
        broker: Broker,
        queue: str,
        begin: Begin,
        inbox: Inbox,
        handler: Handler,
        max_batch: int = 500,
        on_committed: Callable[[object], None] | None = None,
        max_backoff: float = 5.0,
        linger: float = 0.005,
    ) -> None:
        """`max_batch`: messages applied in one transaction at most (the prefetch is twice it).
        `linger`: when a batch starts while more messages are already waiting (a backlog is
        flowing in), wait this long for it to fill before applying it, since each batch costs a
        few statements whatever its size; a lone message is applied at once."""
        self._broker = broker
        self._queue_name = queue
        self._begin = begin
        self._inbox = inbox
        self._handler = handler
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._linger = linger
        self._max_backoff = max_backoff
        self._buffer: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
        self._channel: AbstractChannel | None = None
        self._amqp: AmqpChannel | None = None
        self._consuming = False
        self._paused = False
        self._consuming_since = 0.0
        # Messages received and messages settled since start; `caught_up` compares them.
        self._received = 0
        self._settled = 0
        self._progress = asyncio.Event()
        self.stats = ConsumerStats()

    # Kept as attributes for callers that read them directly.
    @property
    def applied(self) -> int:
        return self.stats.applied

    @property
    def duplicates(self) -> int:
        return self.stats.duplicates

    @property
    def dead_lettered(self) -> int:
        return self.stats.dead_lettered

    async def caught_up(self, timeout: float = 5.0, settle: float = 1.0) -> bool:
        """True once the messages waiting for this consumer have been applied.

        The lease watchdog asks this before it judges leases, so that heartbeats that waited in
        the queue (after a deploy, a restart, a database outage) renew their leases first. False
        while the consumer is not consuming, has consumed for less than `settle` seconds (the
        broker is still pushing the backlog, up to the prefetch), is paused on an infrastructure
        error, or cannot settle what it has received within `timeout`. Only what was received
        before the call is waited for, so a steady flow of reports does not starve the watchdog.

        (The queue's own message count is not used: a quorum queue's declare-ok count lags.)
        """
        if not self._consuming or self._paused or self._amqp is None:
            return False
        if self._amqp.is_closed:
            return False
        loop = asyncio.get_running_loop()
        if loop.time() - self._consuming_since < settle:
            return False
        target = self._received
        try:
            async with asyncio.timeout(timeout):
                while self._settled < target:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            return False
        return not self._paused

    async def _receive(self, message: DeliveredMessage) -> None:
        self._received += 1
        self._buffer.put_nowait(message)  # unbounded: the channel's prefetch bounds it

    async def run(self) -> None:
        """Consume until cancelled, or until the channel closes (a dropped connection, a broker
        restart): then it raises ConnectionError and the caller's supervisor runs it again on the
        reconnected broker.

        Consumption goes through the channel's AMQP layer (aiormq) rather than aio-pika's
        `Queue.consume`: aio-pika wraps each delivery in an IncomingMessage and a second task,
        which cost more CPU than applying the report. aio-pika therefore does not restore this
        consumer after a reconnect, which is why a closed channel ends the run. Messages received
        on the closed channel are dropped unsettled: the broker redelivers them, and the inbox
        recognises any that were applied.
        """
        self._channel = await self._broker.channel(prefetch=self._max_batch * 2)
        await self._channel.get_queue(self._queue_name, ensure=True)  # fails early if it is gone
        amqp = await self._channel.get_underlay_channel()
        self._amqp = amqp
        ok = await amqp.basic_consume(self._queue_name, self._receive)
        self._consuming = True
        self._consuming_since = asyncio.get_running_loop().time()
        closed = amqp.closing
        waiting: asyncio.Future[DeliveredMessage] | None = None
        try:
            while True:
                if closed.done():
                    raise ConnectionError(f"consumer channel of {self._queue_name} closed")
                if self._buffer.empty():
                    waiting = asyncio.ensure_future(self._buffer.get())
                    await asyncio.wait((waiting, closed), return_when=asyncio.FIRST_COMPLETED)
                    if not waiting.done():
                        continue  # the channel closed: raised above
                    batch = [waiting.result()]
                    waiting = None
                else:
                    batch = [self._buffer.get_nowait()]
                    if self._linger and self._buffer.qsize() + 1 < self._max_batch:
                        # A backlog is flowing in: let the batch fill up a little, since each
                        # batch costs a few statements whatever its size.
                        await asyncio.sleep(self._linger)
                while len(batch) < self._max_batch and not self._buffer.empty():
                    batch.append(self._buffer.get_nowait())
                await self._process(batch)
                self._settled += len(batch)
                self._progress.set()
        finally:
            if waiting is not None:
                waiting.cancel()  # a message it had not taken stays in the buffer
            self._consuming = False
            self._amqp = None
            # What was received and not settled is redelivered by the broker.
            while not self._buffer.empty():
                self._buffer.get_nowait()
                self._settled += 1
            self._progress.set()
            if ok.consumer_tag is not None and not amqp.is_closed:
                with contextlib.suppress(Exception):
                    await amqp.basic_cancel(ok.consumer_tag)
            with contextlib.suppress(Exception):
                await self._channel.close()

    async def _process(self, messages: list[DeliveredMessage]) -> None:
        parsed: list[tuple[DeliveredMessage, Received]] = []
        for message in messages:
            try:
                parsed.append((message, parse(message)))
            except (ValidationError, KeyError, ValueError) as exc:
                self.stats.dead_lettered += 1
                log.error(
                    "consumer.unparseable",
                    queue=self._queue_name,
                    message_id=message.header.properties.message_id,
                    error=str(exc)[:500],
                )
                await settle(reject(message))
        if parsed:
            await self._apply_batch(parsed, whole=messages)

    async def _apply_batch(
        self,
        parsed: list[tuple[DeliveredMessage, Received]],
        *,
        whole: list[DeliveredMessage] | None = None,
    ) -> None:
        """Apply `parsed`; `whole` is the delivered batch it came from (None for a retry of one
        message), whose other messages are settled already."""
        pending = list(parsed)
        while pending:
            try:
                await self._apply_riding_out_outages([r for _, r in pending])
            except Rejected as rejection:
                # Dead-letter the rejected message, then apply the rest without it.
                kept = []
                for message, received in pending:
                    if received.envelope.id == rejection.event_id:
                        await self._dead_letter(message, received, rejection.reason)
                    else:
                        kept.append((message, received))
                if len(kept) == len(pending):
                    raise RuntimeError("handler rejected an event it was not given") from rejection
                pending = kept
                continue
            except Exception:
                if len(pending) > 1:
                    log.warning(
                        "consumer.batch_failed",
                        queue=self._queue_name,
                        size=len(pending),
                        exc_info=True,
                    )
                    for one in pending:
                        await self._apply_batch([one])
                    return
                message, received = pending[0]
                with received.handling():
                    log.exception(
                        "consumer.handler_failed",
                        queue=self._queue_name,
                        event_type=received.envelope.type,
                    )
                # The quorum queue counts redeliveries and dead-letters past its delivery limit.
                self.stats.requeued += 1
                await settle(nack(message))
                return
            await self._ack(whole or [], [m for m, _ in pending])
            return

    async def _dead_letter(
        self, message: DeliveredMessage, received: Received, reason: str
    ) -> None:
        self.stats.rejected += 1
        self.stats.dead_lettered += 1
        with received.handling():
            log.error(
                "consumer.rejected",
                queue=self._queue_name,
                event_type=received.envelope.type,
                reason=reason,
            )
        await settle(reject(message))

    async def _apply_riding_out_outages(self, batch: Sequence[Received]) -> None:
        """Apply the batch; on an infrastructure error, wait (exponential back-off with jitter)
        and try the same batch again, for as long as it takes. The messages stay unacked and no
        new ones are taken meanwhile: consumption is paused, and nothing is counted against the
        delivery limit."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_infrastructure_error),
            wait=wait_exponential_jitter(multiplier=0.05, max=self._max_backoff),
            before_sleep=self._log_outage,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._apply(batch)
        finally:
            self._paused = False

    def _log_outage(self, state: Any) -> None:
        self._paused = True
        self.stats.infra_retries += 1
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "consumer.paused_on_infrastructure_error",
            queue=self._queue_name,
            retry=state.attempt_number,
            error=repr(error)[:300],
        )

    @staticmethod
    async def _ack(batch: list[DeliveredMessage], applied: list[DeliveredMessage]) -> None:
        """Ack the applied messages of a batch, with one `multiple` ack where that is exact.

        Batches are settled one after the other, in delivery order, so every delivery before the
        batch is settled already. When the batch's delivery tags are consecutive on one channel
        (its other messages are settled already: dead-lettered), an ack "up to and including" the
        last applied one covers exactly the applied messages. Otherwise ack each.
        """
        tags = [m.delivery_tag for m in batch]
        first = tags[0] if tags else None
        exact = (
            len(applied) > 1
            and isinstance(first, int)
            and tags == list(range(first, first + len(tags)))
            and all(m.channel is batch[0].channel for m in batch)
        )
        if exact:
            await settle(ack(applied[-1], multiple=True))
            return
        for message in applied:
            await settle(ack(message))

    async def _apply(self, batch: Sequence[Received]) -> None:
        async with self._begin() as conn:
            fresh = await self._inbox.record_new(conn, (r.envelope.id for r in batch))
            todo, seen = [], set()
            for r in batch:
                if r.envelope.id in fresh and r.envelope.id not in seen:
                    todo.append(r)
                    seen.add(r.envelope.id)
            result = await self._handler(conn, todo) if todo else None
        self.stats.applied += len(todo)
        self.stats.duplicates += len(batch) - len(todo)
        if result is not None and self._on_committed is not None:
            self._on_committed(result)
