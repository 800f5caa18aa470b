"""Idempotent, batching event consumer.

Messages are drained from the queue in batches (one under light load, hundreds under heavy load);
each batch is applied in one transaction together with its inbox rows, then acknowledged. A batch
whose handler fails is retried message by message, so one bad event cannot block the others: it is
requeued, and after the queue's delivery limit the broker dead-letters it. A message that cannot be
parsed is dead-lettered at once.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import Envelope, EventPayload
from messaging.broker import Broker
from messaging.inbox import Inbox
from messaging.transactions import Begin

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Received:
    envelope: Envelope
    payload: EventPayload


# A handler may return a value; `on_committed` receives it once the batch's transaction committed.
Handler = Callable[[AsyncConnection, Sequence[Received]], Awaitable[object]]


async def _settle(outcome: Awaitable[None]) -> None:
    """Ack/nack; after a reconnect the delivery tag is void and the broker redelivers (the inbox
    then recognises the event), so a failure here is logged, not raised."""
    try:
        await outcome
    except Exception as exc:
        log.warning("consumer.settle_failed", error=repr(exc))


def parse(message: AbstractIncomingMessage) -> Received:
    envelope = Envelope.model_validate_json(message.body)
    return Received(envelope=envelope, payload=envelope.payload())


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
    ) -> None:
        self._broker = broker
        self._queue_name = queue
        self._begin = begin
        self._inbox = inbox
        self._handler = handler
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._channel: AbstractChannel | None = None
        self.applied = 0
        self.duplicates = 0
        self.dead_lettered = 0

    async def run(self) -> None:
        """Consume until cancelled."""
        self._channel = await self._broker.channel(prefetch=self._max_batch * 2)
        queue = await self._channel.get_queue(self._queue_name, ensure=True)
        tag = await queue.consume(self._buffer.put)
        try:
            while True:
                batch = [await self._buffer.get()]
                while len(batch) < self._max_batch and not self._buffer.empty():
                    batch.append(self._buffer.get_nowait())
                await self._process(batch)
        finally:
            if not self._channel.is_closed:
                await queue.cancel(tag)
                await self._channel.close()

    async def _process(self, messages: list[AbstractIncomingMessage]) -> None:
        parsed: list[tuple[AbstractIncomingMessage, Received]] = []
        for message in messages:
            try:
                parsed.append((message, parse(message)))
            except (ValidationError, KeyError, ValueError) as exc:
                self.dead_lettered += 1
                log.error(
                    "consumer.unparseable",
                    queue=self._queue_name,
                    message_id=message.message_id,
                    error=str(exc)[:500],
                )
                await _settle(message.reject(requeue=False))
        if not parsed:
            return
        try:
            await self._apply([r for _, r in parsed])
        except Exception:
            log.warning(
                "consumer.batch_failed", queue=self._queue_name, size=len(parsed), exc_info=True
            )
            for message, received in parsed:
                await self._process_one(message, received)
            return
        await self._ack_batch(messages, [m for m, _ in parsed])

    @staticmethod
    async def _ack_batch(
        batch: list[AbstractIncomingMessage], applied: list[AbstractIncomingMessage]
    ) -> None:
        """Ack the applied messages of a batch, with one `multiple` ack where that is exact.

        Batches are settled one after the other, in delivery order, so every delivery before the
        batch is settled already. When the batch's delivery tags are consecutive on one channel,
        an ack "up to and including" the last applied one covers exactly the applied messages
        (those rejected above are settled already). Otherwise (a reconnect in between), ack each.
        """
        tags = [m.delivery_tag for m in batch]
        first = tags[0]
        exact = (
            len(applied) > 1
            and isinstance(first, int)
            and tags == list(range(first, first + len(tags)))
            and all(m.channel is batch[0].channel for m in batch)
        )
        if exact:
            await _settle(applied[-1].ack(multiple=True))
            return
        for message in applied:
            await _settle(message.ack())

    async def _process_one(self, message: AbstractIncomingMessage, received: Received) -> None:
        try:
            await self._apply([received])
        except Exception:
            log.exception(
                "consumer.handler_failed",
                queue=self._queue_name,
                event_id=str(received.envelope.id),
                event_type=received.envelope.type,
            )
            # The quorum queue counts redeliveries and dead-letters past its delivery limit.
            await _settle(message.nack(requeue=True))
            return
        await _settle(message.ack())

    async def _apply(self, batch: Sequence[Received]) -> None:
        async with self._begin() as conn:
            fresh = await self._inbox.record_new(conn, (r.envelope.id for r in batch))
            todo, seen = [], set()
            for r in batch:
                if r.envelope.id in fresh and r.envelope.id not in seen:
                    todo.append(r)
                    seen.add(r.envelope.id)
            result = await self._handler(conn, todo) if todo else None
        self.applied += len(todo)
        self.duplicates += len(batch) - len(todo)
        if result is not None and self._on_committed is not None:
            self._on_committed(result)
