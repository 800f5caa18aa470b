"""A broker setting naming a RabbitMQ cluster, and the robust connection that fails over within it.

A broker URL setting (`FTD_AMQP_URL`, `FTD_WORKER_AMQP_URL`) holds one AMQP URL or several separated
by commas, one per node of a cluster: `amqp://u:p@rabbit-1:5672/v,amqp://u:p@rabbit-2:5672/v`.
A comma inside a password must be percent-encoded (`%2C`), as any reserved character in a URL.

aio-pika (10.2) has no multi-host connection: its robust connection reconnects to the one URL it
was given (an upstream pull request adding a round-robin class was closed unmerged). Its extension
point is the connection class, so `FailoverConnection` is aio-pika's `RobustConnection` with a list
of URLs: every failed attempt and every loss of an established connection moves it on to the next
URL, and the robust machinery then does what it does after any reconnect, on whichever node
answered: it reopens the channels, re-declares the exchanges and queues declared through them and
restarts their consumers (a quorum queue is replicated: it already exists on the survivors), then
calls the reconnect callbacks. One process holds one connection to one node at a time.
"""

import asyncio
import random
from collections.abc import Sequence
from ssl import SSLContext
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustConnection, TimeoutType
from aio_pika.robust_connection import RobustConnection
from aiormq.connection import parse_bool
from pamqp.common import FieldTable
from yarl import URL

# What a dropped channel or connection raises at its user while it is being restored.
LINK_ERRORS = (
    aio_pika.exceptions.AMQPException,
    aiormq.exceptions.AMQPError,
    ConnectionError,
    RuntimeError,
    TimeoutError,
)

_SCHEMES = ("amqp", "amqps")


class BrokerUrlError(ValueError):
    """A broker setting that is not a list of AMQP URLs. The message never repeats the value (it
    holds a password)."""


def broker_urls(value: str | Sequence[str]) -> list[str]:
    """The URLs a broker setting names, in the order given: one URL, or several separated by
    commas (blanks around them are ignored). All of them amqp:// or all amqps://: one TLS setting
    serves the whole list. Raises BrokerUrlError."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    urls = [part.strip() for part in parts]
    if not any(urls):
        raise BrokerUrlError("no broker URL given")
    schemes = set()
    for position, url in enumerate(urls, start=1):
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in _SCHEMES or not rest:
            raise BrokerUrlError(
                f"broker URL {position} of {len(urls)} is not an AMQP URL: each must be "
                "amqp:// or amqps://user:password@host:port/vhost (percent-encode a comma in a "
                "password as %2C)"
            )
        schemes.add(scheme.lower())
    if len(schemes) > 1:
        raise BrokerUrlError("the broker URLs mix amqp:// and amqps://: use one scheme for all")
    return urls


def uses_tls(value: str | Sequence[str]) -> bool:
    """Whether the broker setting's URLs are amqps:// (checked alike by `broker_urls`)."""
    return broker_urls(value)[0].lower().startswith("amqps://")


def connection_order(urls: Sequence[str], *, shuffle: bool = False) -> list[str]:
    """The order this process tries the URLs in: as given (the first is the preferred node), or
    shuffled once per process so that many processes given one list spread over the nodes."""
    ordered = list(urls)
    if shuffle:
        random.shuffle(ordered)
    return ordered


class FailoverConnection(RobustConnection):
    """A robust connection over a list of URLs (tried in order, round and round).

    `url` is the URL of the current (or next) attempt. Per-URL query options (`heartbeat`,
    `cafile`...) apply to their URL; the connection's own options (`reconnect_interval`) come from
    the keyword arguments and the first URL. `fail_fast` (the default) means the first `connect`
    raises once every URL has refused once, instead of at the first refusal.
    """

    def __init__(
        self,
        urls: Sequence[str | URL],
        loop: asyncio.AbstractEventLoop | None = None,
        **kwargs: Any,
    ) -> None:
        if not urls:
            raise ValueError("FailoverConnection needs at least one URL")
        # Set before RobustConnection.__init__, which assigns `url` through the property below.
        self._urls = [URL(url) for url in urls]
        self._current = 0
        first_query = self._urls[0].query
        self._fail_fast = parse_bool(str(kwargs.pop("fail_fast", first_query.get("fail_fast", 1))))
        self._first_round: asyncio.Future[None] | None = None
        self._first_round_failures = 0
        # aio-pika's own fail-fast gives up at the first refused URL; ours waits for a full round.
        super().__init__(self._urls[0], loop=loop, fail_fast=False, **kwargs)

    @property
    def url(self) -> URL:
        return self._urls[self._current]

    @url.setter
    def url(self, value: URL) -> None:
        self._urls[self._current] = URL(value)

    @property
    def urls(self) -> list[URL]:
        return list(self._urls)

    def __str__(self) -> str:
        # aio-pika logs a failed attempt after the move to the next URL: name them all (without
        # passwords); the error names the host that refused.
        return ",".join(
            str(url.with_password("******") if url.password else url) for url in self._urls
        )

    def _advance(self) -> None:
        self._current = (self._current + 1) % len(self._urls)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        # aio-pika calls this for an attempt that failed (UnderlayConnection.connect hands it the
        # error) and for an established connection that was lost: either way the next attempt
        # dials the next node. A close we asked for stays where it is.
        if not self._close_called:
            self._advance()
            self._count_first_round_failure(closing)
        await super()._on_connection_close(closing)

    def _count_first_round_failure(self, closing: asyncio.Future[Any]) -> None:
        first_round = self._first_round
        if first_round is None or first_round.done() or self.connected.is_set():
            return
        self._first_round_failures += 1
        if self._first_round_failures >= len(self._urls):
            error: BaseException | None
            try:
                error = closing.exception()
            except asyncio.CancelledError:
                error = None
            first_round.set_exception(error or ConnectionError("no broker URL answered"))

    async def connect(self, timeout: TimeoutType = None) -> None:
        if not self._fail_fast or self.connection_attempt:
            await super().connect(timeout)
            return
        self._first_round = self.loop.create_future()
        connecting = asyncio.ensure_future(super().connect(timeout))
        try:
            await asyncio.wait({connecting, self._first_round}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            connecting.cancel()
            raise
        if connecting.done():
            self._first_round.cancel()
            connecting.result()
            return
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        error = self._first_round.exception()
        await self.close()
        assert error is not None  # the round failed: it holds the last refusal
        raise error


async def connect_failover(
    urls: str | Sequence[str],
    *,
    shuffle: bool = False,
    client_properties: FieldTable | None = None,
    reconnect_interval: float = 1.0,
    ssl_context: SSLContext | None = None,
    timeout: TimeoutType = None,
) -> AbstractRobustConnection:
    """aio_pika.connect_robust over a broker setting's URLs (see `broker_urls`): connected to the
    first that answers, failing over to the next on a loss. Raises BrokerUrlError for a bad
    setting, the last refusal when none answers."""
    connection = FailoverConnection(
        connection_order(broker_urls(urls), shuffle=shuffle),
        client_properties=client_properties,
        reconnect_interval=reconnect_interval,
        ssl_context=ssl_context,
    )
    await connection.connect(timeout=timeout)
    return connection


__all__ = [
    "BrokerUrlError",
    "FailoverConnection",
    "broker_urls",
    "connect_failover",
    "connection_order",
    "uses_tls",
]
