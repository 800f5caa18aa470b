"""A FailoverConnection whose node goes away moves to the next URL and restores its consumer there.

The two "nodes" are TCP proxies in front of the one local RabbitMQ: cutting the first drops the
connection as a dead node would, while the queue stays (as a replicated queue stays on a cluster's
survivors). tests/cluster/ does the same against a real three-node cluster.
"""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from workerlink.failover import FailoverConnection, connect_failover

pytestmark = pytest.mark.integration

AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class Proxy:
    """Forwards TCP connections to the broker until cut (then it closes them and stops listening)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self.writers += [writer, up_writer]

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def url(self) -> str:
        parts = urlsplit(AMQP_URL)
        netloc = parts.netloc.rsplit("@", 1)
        credentials = f"{netloc[0]}@" if len(netloc) == 2 else ""
        return f"{parts.scheme}://{credentials}127.0.0.1:{self.port}{parts.path}"

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers = []


@pytest.fixture
async def proxies() -> AsyncIterator[list[Proxy]]:
    parts = urlsplit(AMQP_URL)
    made = [Proxy((parts.hostname or "127.0.0.1", parts.port or 5672)) for _ in range(2)]
    for proxy in made:
        await proxy.start()
    try:
        yield made
    finally:
        for proxy in made:
            await proxy.cut()


async def test_a_lost_node_is_replaced_by_the_next_and_the_consumer_restored(
    proxies: list[Proxy],
) -> None:
    first, second = proxies
    connection = await connect_failover(
        f"{first.url()},{second.url()}", reconnect_interval=0.1, timeout=10
    )
    assert isinstance(connection, FailoverConnection)
    queue_name = f"ftd-test-failover-{uuid.uuid4().hex[:8]}"
    reconnected = asyncio.Event()
    connection.reconnect_callbacks.add(lambda *_: reconnected.set())
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_message(message: AbstractIncomingMessage) -> None:
        await message.ack()
        await received.put(message.body)

    try:
        assert connection.url.port == first.port
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True)
        await queue.consume(on_message)
        await channel.default_exchange.publish(aio_pika.Message(b"before"), queue_name)
        assert await asyncio.wait_for(received.get(), 10) == b"before"

        await first.cut()
        await asyncio.wait_for(reconnected.wait(), 15)
        assert connection.url.port == second.port

        # The consumer declared through the robust channel runs again, on the new connection.
        publisher = await connection.channel()
        await publisher.default_exchange.publish(aio_pika.Message(b"after"), queue_name)
        assert await asyncio.wait_for(received.get(), 10) == b"after"
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                cleanup = await connection.channel()
                await cleanup.queue_delete(queue_name)
        await connection.close()
