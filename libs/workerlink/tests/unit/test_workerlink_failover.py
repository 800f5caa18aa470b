"""Broker URL lists and the order a FailoverConnection dials them in (no broker: local sockets that
record who was dialled and hang up, as a node that is down or refusing would)."""

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from workerlink.failover import (
    BrokerUrlError,
    FailoverConnection,
    broker_urls,
    connection_order,
    uses_tls,
)


def test_one_url_is_a_list_of_one() -> None:
    assert broker_urls("amqp://u:p@rabbit:5672/v") == ["amqp://u:p@rabbit:5672/v"]


def test_a_comma_separated_setting_keeps_its_order_and_ignores_blanks() -> None:
    value = "amqp://u:p@r1:5672/v, amqp://u:p@r2:5672/v ,amqp://u:p@r3:5672/v"
    assert broker_urls(value) == [
        "amqp://u:p@r1:5672/v",
        "amqp://u:p@r2:5672/v",
        "amqp://u:p@r3:5672/v",
    ]


def test_a_sequence_is_taken_as_it_is() -> None:
    assert broker_urls(["amqps://a/", "AMQPS://b/"]) == ["amqps://a/", "AMQPS://b/"]
    assert uses_tls(["amqps://a/", "AMQPS://b/"])
    assert not uses_tls("amqp://a/,amqp://b/")


@pytest.mark.parametrize(
    "value",
    ["", " , ", "http://u:p@r1/", "amqp://u:p@r1/,", "amqp://u:p@r1/,r2:5672", "amqp://"],
)
def test_anything_but_amqp_urls_is_refused(value: str) -> None:
    with pytest.raises(BrokerUrlError):
        broker_urls(value)


def test_a_refusal_never_repeats_the_password() -> None:
    # An unencoded comma in a password splits the URL: the message says so, not what it was.
    with pytest.raises(BrokerUrlError) as refused:
        broker_urls("amqp://user:sec,ret-value@r1:5672/")
    assert "ret-value" not in str(refused.value)
    assert "sec" not in str(refused.value)
    assert "%2C" in str(refused.value)
    assert "2 of 2" in str(refused.value)


def test_amqp_and_amqps_are_not_mixed() -> None:
    with pytest.raises(BrokerUrlError, match="mix"):
        broker_urls("amqp://r1/,amqps://r2/")


def test_the_order_is_as_given_unless_shuffled() -> None:
    urls = [f"amqp://r{n}/" for n in range(8)]
    assert connection_order(urls) == urls
    random.seed(7)
    shuffled = connection_order(urls, shuffle=True)
    assert sorted(shuffled) == sorted(urls)
    assert shuffled != urls  # 1 in 40320 to be equal; the seed makes it certain it is not


class HangingUp:
    """Local ports that accept a TCP connection, note which port it reached and close it."""

    def __init__(self) -> None:
        self.dialled: list[int] = []
        self.servers: list[asyncio.Server] = []
        self.dial = asyncio.Event()

    async def open(self, count: int) -> list[int]:
        for _ in range(count):
            server = await asyncio.start_server(self._hang_up, "127.0.0.1", 0)
            self.servers.append(server)
        return [s.sockets[0].getsockname()[1] for s in self.servers]

    async def _hang_up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.dialled.append(writer.get_extra_info("sockname")[1])
        self.dial.set()
        writer.close()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()


@pytest.fixture
async def hanging_up() -> AsyncIterator[HangingUp]:
    ports = HangingUp()
    try:
        yield ports
    finally:
        await ports.close()


async def test_the_first_connect_tries_every_url_in_order_then_raises(
    hanging_up: HangingUp,
) -> None:
    ports = await hanging_up.open(3)
    connection = FailoverConnection(
        [f"amqp://u:p@127.0.0.1:{port}/" for port in ports], reconnect_interval=0.05
    )
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(connection.connect(timeout=2), 10)
    assert hanging_up.dialled == ports
    assert connection.is_closed


async def test_without_fail_fast_it_goes_round_the_list_until_one_answers(
    hanging_up: HangingUp,
) -> None:
    ports = await hanging_up.open(2)
    connection = FailoverConnection(
        [f"amqp://u:p@127.0.0.1:{port}/" for port in ports],
        reconnect_interval=0.05,
        fail_fast=False,
    )
    connecting = asyncio.ensure_future(connection.connect(timeout=2))
    try:
        async with asyncio.timeout(10):
            while len(hanging_up.dialled) < 5:
                hanging_up.dial.clear()
                await hanging_up.dial.wait()
        assert not connecting.done()
        assert hanging_up.dialled[:5] == [*ports, *ports, ports[0]]
    finally:
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        await connection.close()


async def test_a_failed_url_is_named_without_its_password() -> None:
    connection = FailoverConnection(["amqp://u:hunter2@r1:5672/", "amqp://u:hunter2@r2:5672/"])
    assert "hunter2" not in str(connection)
    assert "r1:5672" in str(connection)
    assert "r2:5672" in str(connection)
    assert connection.url.host == "r1"
