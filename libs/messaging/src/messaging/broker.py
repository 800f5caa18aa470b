"""One robust AMQP connection per process, with a confirmed publishing channel.

aio-pika's robust connection reconnects after a broker restart and restores the channels, queues,
bindings and consumers declared through it; publications that failed meanwhile are the caller's to
retry (the outbox relay retries; nothing publishes from memory). Given a cluster's URLs (a
comma-separated list, workerlink.failover), it connects to the first node that answers and, when
that node goes away, to the next one that does.
"""

import asyncio
from collections.abc import Sequence

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from contracts.events import Envelope
from contracts.routing import BrokerNames
from workerlink.failover import BrokerUrlError, broker_urls, connect_failover

log = structlog.get_logger(__name__)

PublishFailure = (
    aiormq.exceptions.AMQPError,
    aio_pika.exceptions.AMQPException,
    ConnectionError,
    asyncio.TimeoutError,
    RuntimeError,
)


class Unroutable(Exception):
    """The broker returned a mandatory message: no queue is bound for its routing key."""


class Broker:
    """Holds the connection and a confirmed channel for publishing to the events exchange."""

    def __init__(
        self,
        url: str | Sequence[str],
        names: BrokerNames,
        *,
        client_name: str,
        shuffle: bool = False,
    ) -> None:
        """`url`: one AMQP URL or a cluster's (a list, or one string separated by commas; raises
        BrokerUrlError, a ValueError, when it is neither). `shuffle`: try them in an order of this
        process's own instead of as given, to spread many processes over the nodes."""
        self._urls = broker_urls(url)
        self._shuffle = shuffle
        self.names = names
        self._client_name = client_name
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._events: AbstractExchange | None = None
        self._exchanges: dict[str, AbstractExchange] = {}

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("Broker.connect() has not been awaited")
        return self._connection

    async def connect(self) -> None:
        self._connection = await connect_failover(
            self._urls,
            shuffle=self._shuffle,
            client_properties={"connection_name": self._client_name},
            reconnect_interval=1,
        )
        self._publish_channel = await self._connection.channel(publisher_confirms=True)
        self._events = await self._publish_channel.get_exchange(
            self.names.events_exchange, ensure=False
        )
        self._exchanges = {self.names.events_exchange: self._events}

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def channel(
        self, *, prefetch: int | None = None, confirms: bool = True
    ) -> AbstractChannel:
        channel = await self.connection.channel(publisher_confirms=confirms)
        if prefetch is not None:
            await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def publish_raw(
        self,
        body: bytes,
        *,
        routing_key: str,
        message_id: str,
        event_type: str,
        timeout: float = 10,
        mandatory: bool = True,
        exchange: str | None = None,
    ) -> None:
        """Publish with a broker confirm to `exchange` (default: the events exchange). With
        `mandatory`, a message no queue is bound for raises Unroutable; otherwise the broker drops
        it (a broadcast nobody subscribes to yet). Other failures raise a PublishFailure."""
        if self._events is None or self._publish_channel is None:
            raise RuntimeError("Broker.connect() has not been awaited")
        target = self._events
        if exchange is not None and exchange != self.names.events_exchange:
            found = self._exchanges.get(exchange)
            if found is None:
                found = await self._publish_channel.get_exchange(exchange, ensure=False)
                self._exchanges[exchange] = found
            target = found
        message = aio_pika.Message(
            body=body,
            message_id=message_id,
            type=event_type,
            content_type="application/cloudevents+json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        # A robust channel waits while reconnecting; bound the whole call, not just the frame.
        async with asyncio.timeout(timeout):
            result = await target.publish(message, routing_key, mandatory=mandatory)
        if isinstance(result, aiormq.abc.DeliveredMessage):
            raise Unroutable(routing_key)

    async def publish(
        self,
        envelope: Envelope,
        routing_key: str,
        *,
        timeout: float = 10,
        exchange: str | None = None,
    ) -> None:
        await self.publish_raw(
            envelope.model_dump_json().encode(),
            routing_key=routing_key,
            message_id=str(envelope.id),
            event_type=envelope.type,
            timeout=timeout,
            exchange=exchange,
        )


# The broker setting's parsing is re-exported for the settings that validate it.
__all__ = ["Broker", "BrokerUrlError", "PublishFailure", "Unroutable", "broker_urls"]
