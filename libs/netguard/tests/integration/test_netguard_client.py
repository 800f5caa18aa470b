"""Guarded fetches against loopback listeners: a refused fetch never reaches them, whatever the
DNS answer or redirect; the allow-list, TLS on the host name, the byte cap and the deadline."""

import ssl
from collections.abc import AsyncIterator

import httpx
import pytest
from netguard_testing import LoopbackServer, Reply, ThrowawayCa, make_ca

from netguard import (
    DeadlineExceeded,
    GuardedClient,
    GuardedTransport,
    RedirectRefused,
    StaticResolver,
    TooLarge,
    UrlRefused,
)

pytestmark = pytest.mark.integration

BODY = b"text,label\n" + b"".join(b"row %d,x\n" % i for i in range(200))


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCa:
    return make_ca(tmp_path_factory.mktemp("ca"), ["files.test", "mirror.test"])


@pytest.fixture
async def https_server(ca: ThrowawayCa) -> AsyncIterator[LoopbackServer]:
    server = await LoopbackServer(tls=ca.server()).start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def other_server(ca: ThrowawayCa) -> AsyncIterator[LoopbackServer]:
    """A second HTTPS listener: where a redirect must not lead."""
    server = await LoopbackServer(tls=ca.server()).start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def http_server() -> AsyncIterator[LoopbackServer]:
    server = await LoopbackServer().start()
    try:
        yield server
    finally:
        await server.close()


RESOLVER = StaticResolver(
    {
        "files.test": ["127.0.0.1"],
        "mirror.test": ["127.0.0.1"],
        "internal.test": ["127.0.0.1"],
        "mixed.test": ["93.184.215.14", "127.0.0.1"],
        "mixed-first.test": ["127.0.0.1", "93.184.215.14"],
        "metadata.test": ["169.254.169.254"],
        "mapped.test": ["::ffff:127.0.0.1"],
    }
)


def client(ca: ThrowawayCa, *allowed: str, **options: object) -> GuardedClient:
    return GuardedClient(
        allowed_hosts=allowed,
        resolver=RESOLVER,
        verify=ca.client(),
        timeout=10,
        **options,  # type: ignore[arg-type]
    )


async def fetch(guarded: GuardedClient, url: str, **options: object) -> bytes:
    async with guarded, guarded.stream("GET", url, **options) as response:  # type: ignore[arg-type]
        assert response.status_code == 200
        return await response.aread()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("internal.test", "loopback"),
        ("mixed.test", "loopback"),
        ("mixed-first.test", "loopback"),
        ("mapped.test", "loopback"),
    ],
)
async def test_a_name_resolving_to_an_internal_address_is_refused_before_connecting(
    ca: ThrowawayCa, https_server: LoopbackServer, name: str, kind: str
) -> None:
    with pytest.raises(UrlRefused) as refused:
        await fetch(client(ca), https_server.url("/data.csv", host=name))

    assert refused.value.resolved
    assert refused.value.kind == kind
    assert refused.value.hop == 0
    assert name not in str(refused.value)
    assert "127.0.0.1" not in str(refused.value)
    assert https_server.connections == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f000001", "127.1", "[::1]"])
async def test_address_literals_are_refused_before_connecting(
    ca: ThrowawayCa, https_server: LoopbackServer, host: str
) -> None:
    with pytest.raises(UrlRefused):
        await fetch(client(ca), https_server.url("/data.csv", host=host))
    assert https_server.connections == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "2130706433", "0x7f000001", "internal.test"])
async def test_the_transport_alone_refuses_at_connect_time(
    ca: ThrowawayCa, https_server: LoopbackServer, host: str
) -> None:
    """Without the client's check of the URL's text, the connection itself is refused."""
    transport = GuardedTransport(resolver=RESOLVER, verify=ca.client())
    async with httpx.AsyncClient(transport=transport) as plain:
        with pytest.raises(UrlRefused):
            await plain.get(https_server.url("/data.csv", host=host))
    assert https_server.connections == 0


async def test_an_allow_listed_host_is_fetched_over_tls_on_its_name(
    ca: ThrowawayCa, https_server: LoopbackServer
) -> None:
    https_server.routes["/data.csv"] = Reply(body=BODY)

    body = await fetch(client(ca, "files.test"), https_server.url("/data.csv", host="files.test"))

    assert body == BODY
    assert https_server.requests[0].headers["host"] == f"files.test:{https_server.port}"


async def test_a_suffix_in_the_allow_list_admits_the_names_below_it(
    ca: ThrowawayCa, https_server: LoopbackServer
) -> None:
    https_server.routes["/data.csv"] = Reply(body=BODY)
    url = https_server.url("/data.csv", host="files.test")
    assert await fetch(client(ca, ".test"), url) == BODY


async def test_the_certificate_is_verified_against_the_host_name(
    ca: ThrowawayCa, https_server: LoopbackServer
) -> None:
    """internal.test resolves to the same listener, whose certificate does not name it."""
    https_server.routes["/data.csv"] = Reply(body=BODY)
    with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        await fetch(
            client(ca, "internal.test"), https_server.url("/data.csv", host="internal.test")
        )


async def test_an_https_to_http_redirect_is_refused(
    ca: ThrowawayCa, https_server: LoopbackServer, http_server: LoopbackServer
) -> None:
    target = http_server.url("/data.csv", host="files.test")
    https_server.routes["/data.csv"] = Reply(302, {"Location": target})
    http_server.routes["/data.csv"] = Reply(body=b"INTERNAL-SECRET")

    with pytest.raises(RedirectRefused) as refused:
        await fetch(client(ca, "files.test"), https_server.url("/data.csv", host="files.test"))

    assert refused.value.hop == 1
    assert "INTERNAL-SECRET" not in str(refused.value)
    assert len(https_server.requests) == 1
    assert http_server.connections == 0


async def test_an_http_start_is_refused_unless_asked_for(
    ca: ThrowawayCa, http_server: LoopbackServer
) -> None:
    with pytest.raises(UrlRefused) as refused:
        await fetch(client(ca, "files.test"), http_server.url("/data.csv", host="files.test"))
    assert refused.value.kind == "scheme"
    assert http_server.connections == 0


@pytest.mark.parametrize("host", ["internal.test", "127.0.0.1", "metadata.test"])
async def test_a_redirect_to_an_internal_host_is_refused_after_the_first_hop(
    ca: ThrowawayCa, https_server: LoopbackServer, other_server: LoopbackServer, host: str
) -> None:
    https_server.routes["/data.csv"] = Reply(
        307, {"Location": other_server.url("/secret", host=host)}
    )
    other_server.routes["/secret"] = Reply(body=b"INTERNAL-SECRET")

    with pytest.raises(UrlRefused) as refused:
        await fetch(client(ca, "files.test"), https_server.url("/data.csv", host="files.test"))

    assert refused.value.hop == 1
    assert len(https_server.requests) == 1
    assert other_server.connections == 0


async def test_a_redirect_to_another_allowed_host_is_followed(
    ca: ThrowawayCa, https_server: LoopbackServer, other_server: LoopbackServer
) -> None:
    https_server.routes["/data.csv"] = Reply(
        301, {"Location": other_server.url("/moved.csv", host="mirror.test")}
    )
    other_server.routes["/moved.csv"] = Reply(body=BODY)
    guarded = client(ca, "files.test", "mirror.test")
    async with (
        guarded,
        guarded.stream("GET", https_server.url("/data.csv", host="files.test")) as response,
    ):
        assert response.redirects == 1
        assert response.url.host == "mirror.test"
        assert await response.aread() == BODY


async def test_redirects_stop_after_the_limit(
    ca: ThrowawayCa, https_server: LoopbackServer
) -> None:
    https_server.routes["/loop"] = Reply(302, {"Location": "/loop"})
    guarded = client(ca, "files.test", max_redirects=3)
    with pytest.raises(RedirectRefused) as refused:
        await fetch(guarded, https_server.url("/loop", host="files.test"))
    assert refused.value.hop == 4
    assert len(https_server.requests) == 4


async def test_a_declared_length_over_the_cap_is_refused_before_reading(
    ca: ThrowawayCa, https_server: LoopbackServer
) -> None:
    https_server.routes["/data.csv"] = Reply(body=BODY)
    with pytest.raises(TooLarge) as too_large:
        await fetch(
            client(ca, "files.test"),
            https_server.url("/data.csv", host="files.test"),
            max_bytes=100,
        )
    assert too_large.value.max_bytes == 100


async def test_a_chunked_body_stops_at_the_cap(
    ca: ThrowawayCa, https_server: LoopbackServer
) -> None:
    https_server.routes["/data.csv"] = Reply(body=BODY * 50, chunked=True)
    received: list[bytes] = []

    async def read() -> None:
        guarded = client(ca, "files.test")
        url = https_server.url("/data.csv", host="files.test")
        async with guarded, guarded.stream("GET", url, max_bytes=10_000) as response:
            async for chunk in response.aiter_bytes():
                received.append(chunk)

    with pytest.raises(TooLarge):
        await read()
    assert sum(map(len, received)) <= 10_000


async def test_a_body_of_exactly_the_cap_is_read(
    ca: ThrowawayCa, https_server: LoopbackServer
) -> None:
    https_server.routes["/data.csv"] = Reply(body=BODY, chunked=True)
    url = https_server.url("/data.csv", host="files.test")
    assert await fetch(client(ca, "files.test"), url, max_bytes=len(BODY)) == BODY


async def test_the_deadline_bounds_the_whole_fetch(
    ca: ThrowawayCa, https_server: LoopbackServer
) -> None:
    https_server.routes["/slow.csv"] = Reply(body=BODY, stall=True)
    with pytest.raises(DeadlineExceeded):
        await fetch(
            client(ca, "files.test"),
            https_server.url("/slow.csv", host="files.test"),
            deadline=0.5,
        )


async def test_proxies_from_the_environment_are_ignored(
    ca: ThrowawayCa,
    https_server: LoopbackServer,
    http_server: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, http_server.url(""))
    https_server.routes["/data.csv"] = Reply(body=BODY)

    body = await fetch(client(ca, "files.test"), https_server.url("/data.csv", host="files.test"))

    assert body == BODY
    assert http_server.connections == 0


async def test_a_name_that_does_not_resolve_is_a_connect_error(ca: ThrowawayCa) -> None:
    with pytest.raises(httpx.ConnectError, match="does not resolve"):
        await fetch(client(ca), "https://nowhere.test/data.csv")


def test_a_context_that_does_not_verify_is_refused() -> None:
    lax = ssl.create_default_context()
    lax.check_hostname = False
    with pytest.raises(ValueError, match="verifies"):
        GuardedClient(verify=lax)
