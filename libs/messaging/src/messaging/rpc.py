"""The serving side of request/reply over the broker: a durable request queue served by one
service, replies to the caller's exclusive queue matched by correlation id. Callers retry on
timeout, so handlers must be idempotent (ClaimJob carries a claim id for that). The calling side
is the worker's (workerlink.rpc.RpcClient)."""

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiormq
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import BaseModel, ValidationError

from messaging.broker import Broker
from messaging.consumer import is_infrastructure_error

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Answer:
    """A handler's reply with what to do once it has been sent (give a connection back, a log
    line, counters): work the caller does not wait for. `then` may be a coroutine function; it
    runs once the handler has answered, whatever happens to the reply (so it may release
    what the handler holds)."""

    reply: BaseModel
    then: Callable[[], object]


class RpcServer:
    def __init__(
        self,
        *,
        broker: Broker,
        queue: str,
        handler: Callable[[bytes], Awaitable[BaseModel | Answer]],
        prefetch: int = 64,
    ) -> None:
        self._broker = broker
        self._queue_name = queue
        self._handler = handler
        self._prefetch = prefetch
        self._channel: AbstractChannel | None = None

    async def run(self) -> None:
        # Replies are best-effort (the caller retries), so no confirm round trip.
        self._channel = await self._broker.channel(prefetch=self._prefetch, confirms=False)
        queue = await self._channel.get_queue(self._queue_name, ensure=True)
        tag = await queue.consume(self._on_request)
        try:
            await asyncio.Future()
        finally:
            if not self._channel.is_closed:
                await queue.cancel(tag)
                await self._channel.close()

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        assert self._channel is not None
        try:
            answer = await self._handler(message.body)
        except ValidationError as exc:
            # Where and why, never the values (a request may carry a signature or a secret).
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['type']}" for e in exc.errors()]
            log.error("rpc.bad_request", queue=self._queue_name, problems=problems[:10])
            await message.reject(requeue=False)
            return
        except Exception as exc:
            # The caller times out and retries with the same request id.
            if is_infrastructure_error(exc):
                # Not the request's fault (the database is down): drop it without
                # dead-lettering; the retry finds the service again.
                log.warning("rpc.unavailable", queue=self._queue_name, error=repr(exc)[:300])
                await message.ack()
                return
            log.exception("rpc.handler_failed", queue=self._queue_name)
            await message.reject(requeue=False)
            return
        reply, then = (answer.reply, answer.then) if isinstance(answer, Answer) else (answer, None)
        try:
            if message.reply_to:
                with contextlib.suppress(Exception):
                    # Straight to the channel: aio-pika's Message and exchange layers add
                    # nothing for a reply (no confirm: best-effort, the caller retries).
                    channel = await self._channel.get_underlay_channel()
                    await channel.basic_publish(
                        reply.__pydantic_serializer__.to_json(reply),
                        routing_key=message.reply_to,
                        properties=aiormq.spec.Basic.Properties(
                            correlation_id=message.correlation_id,
                            content_type="application/json",
                        ),
                    )
            await message.ack()
        finally:
            if then is not None:
                try:
                    if inspect.isawaitable(result := then()):
                        await result
                except Exception:
                    log.exception("rpc.after_reply_failed", queue=self._queue_name)
