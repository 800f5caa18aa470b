"""Request/reply over the broker: the request goes to a topic exchange (never the default one,
which a worker may not write to), the reply comes back to an exclusive queue of ours, matched by
correlation id. The caller retries on timeout, with the same request id."""

import asyncio
import uuid
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from pydantic import BaseModel

Reply = TypeVar("Reply", bound=BaseModel)


class RpcTimeout(TimeoutError):
    """No reply in time (or the link dropped under the request): retry with the same request."""


class RpcClient:
    def __init__(self, connection: AbstractConnection, *, reply_queue: str) -> None:
        """`reply_queue`: the name of our reply queue, one our broker permissions let us declare
        (and a robust channel re-declares after a reconnect)."""
        self._connection = connection
        self._reply_queue_name = reply_queue
        self._futures: dict[str, asyncio.Future[bytes]] = {}
        self._channel: AbstractChannel | None = None
        self._reply_queue: AbstractQueue | None = None

    async def start(self) -> None:
        self._channel = await self._connection.channel()
        self._reply_queue = await self._channel.declare_queue(
            self._reply_queue_name, exclusive=True, auto_delete=True
        )
        await self._reply_queue.consume(self._on_reply, no_ack=True)

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._futures.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def call(
        self,
        exchange: str,
        routing_key: str,
        request: BaseModel,
        reply_type: type[Reply],
        *,
        timeout: float = 10,
    ) -> Reply:
        if self._channel is None or self._reply_queue is None:
            raise RuntimeError("RpcClient.start() has not been awaited")
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._futures[correlation_id] = future
        try:
            # A robust channel waits while reconnecting: bound the whole call, not just the frame.
            async with asyncio.timeout(timeout):
                target = (
                    self._channel.default_exchange
                    if exchange == ""
                    else await self._channel.get_exchange(exchange, ensure=False)
                )
                await target.publish(
                    aio_pika.Message(
                        body=request.model_dump_json().encode(),
                        correlation_id=correlation_id,
                        reply_to=self._reply_queue.name,
                        content_type="application/json",
                        expiration=timeout,
                    ),
                    routing_key=routing_key,
                )
                body = await future
        except TimeoutError as exc:
            raise RpcTimeout(f"no reply from {routing_key} within {timeout}s") from exc
        except (aio_pika.exceptions.AMQPException, ConnectionError, RuntimeError) as exc:
            raise RpcTimeout(f"request to {routing_key} failed: {exc}") from exc
        finally:
            self._futures.pop(correlation_id, None)
        return reply_type.model_validate_json(body)
