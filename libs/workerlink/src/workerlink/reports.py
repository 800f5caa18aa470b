"""Worker reports (job.progress, job.failed, model.pushed) leave through this outbox: the caller
never waits on the broker, and while the link is down reports wait here, in order, and go out
after the reconnect with their original event ids (job-api dedupes on them).

Progress reports of one attempt coalesce: only the newest waiting one is kept (with the log lines
of those it replaces), so a long outage costs memory for one report per job, not one per step.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractExchange

from contracts.events import MAX_LOG_LINES, Envelope, EventPayload, JobProgress

log = structlog.get_logger(__name__)


def amqp_message(envelope: Envelope, *, persistent: bool = True) -> aio_pika.Message:
    """The broker message of an event: the envelope as JSON, its id the message id."""
    return aio_pika.Message(
        body=envelope.model_dump_json().encode(),
        message_id=str(envelope.id),
        type=envelope.type,
        content_type="application/cloudevents+json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT if persistent else None,
    )


async def every(
    send: Callable[[], Awaitable[None]],
    interval: float,
    now: asyncio.Event,
    errors: tuple[type[BaseException], ...],
) -> None:
    """Call `send` every `interval` seconds, and at once when `now` is set; `errors` (the
    link is down) are skipped, the next call comes all the same."""
    while True:
        try:
            await send()
        except errors as exc:
            log.debug("heartbeat.unsent", error=repr(exc)[:200])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await now.wait()
        now.clear()


class Unroutable(Exception):
    """The broker returned the report: nothing is bound for it (job-api not set up yet)."""


@dataclass
class _Pending:
    payload: EventPayload
    envelope: Envelope


class ReportOutbox:
    def __init__(
        self,
        exchange: AbstractExchange,
        *,
        source: str,
        publish_timeout: float = 10,
        retry_interval: float = 1.0,
    ) -> None:
        self._exchange = exchange
        self._source = source
        self._publish_timeout = publish_timeout
        self._retry_interval = retry_interval
        self._pending: deque[_Pending] = deque()
        self._in_flight: _Pending | None = None
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="report-outbox")

    def send(self, payload: EventPayload) -> None:
        """Queue a report; returns at once. Its envelope takes the current trace (the attempt's,
        contracts.envelope.traced) now, not when it leaves."""
        if isinstance(payload, JobProgress):
            payload = self._coalesce(payload)
        self._pending.append(_Pending(payload, Envelope.wrap(payload, source=self._source)))
        self._drained.clear()
        self._wakeup.set()

    def _coalesce(self, new: JobProgress) -> JobProgress:
        lines: list[str] = []
        kept: deque[_Pending] = deque()
        for item in self._pending:
            old = item.payload
            if (
                item is not self._in_flight
                and isinstance(old, JobProgress)
                and old.job_id == new.job_id
                and old.attempt == new.attempt
            ):
                lines.extend(old.log_lines)
            else:
                kept.append(item)
        if not lines:
            return new
        self._pending = kept
        merged = [*lines, *new.log_lines][-MAX_LOG_LINES:]
        return new.model_copy(update={"log_lines": merged})

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def flush(self, timeout: float) -> bool:
        """Wait until every queued report is confirmed by the broker; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._drained.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, *, timeout: float) -> None:
        flushed = await self.flush(timeout)
        if not flushed:
            log.warning("reports.unsent", count=len(self._pending))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _publish(self, item: _Pending) -> None:
        await self.publish(item.envelope, item.payload.routing_key(), timeout=self._publish_timeout)

    async def publish(
        self,
        envelope: Envelope,
        routing_key: str,
        *,
        timeout: float,
        persistent: bool = True,
        mandatory: bool = True,
    ) -> None:
        """Publish now, bypassing the queue, and wait for the broker's confirm (raises on
        failure; `Unroutable` when `mandatory` and nothing is bound for it)."""
        async with asyncio.timeout(timeout):
            result = await self._exchange.publish(
                amqp_message(envelope, persistent=persistent), routing_key, mandatory=mandatory
            )
        if isinstance(result, aiormq.abc.DeliveredMessage):
            raise Unroutable(routing_key)

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wakeup.wait()
            while self._pending:
                item = self._pending[0]
                self._in_flight = item
                try:
                    await self._publish(item)
                except (
                    aiormq.exceptions.AMQPError,
                    aio_pika.exceptions.AMQPException,
                    ConnectionError,
                    TimeoutError,
                    RuntimeError,
                    Unroutable,
                ) as exc:
                    failures += 1
                    if failures == 1 or failures % 30 == 0:
                        log.warning(
                            "reports.publish_failed",
                            event_type=item.envelope.type,
                            backlog=len(self._pending),
                            error=repr(exc)[:200],
                        )
                    await asyncio.sleep(self._retry_interval)
                    continue
                finally:
                    self._in_flight = None
                if failures:
                    log.info("reports.publishing_again", backlog=len(self._pending))
                failures = 0
                # Coalescing never removes the report in flight: it is still the head.
                self._pending.popleft()
                self.sent += 1
            self._wakeup.clear()
            self._drained.set()
