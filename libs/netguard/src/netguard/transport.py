"""An httpx transport that connects only to public addresses, checked when it connects.

httpcore opens every connection through its network backend's `connect_tcp(host, port)`; the
guarded backend resolves the host itself, refuses the connection if ANY answer is internal (unless
the host is allow-listed), and connects to the vetted address. There is no second lookup for a
DNS rebind to slip into, and TLS still runs on the host name: httpcore calls `start_tls` on the
stream with the URL's host as SNI and for certificate verification.
"""

import ssl
from collections.abc import Iterable, Sequence
from ipaddress import ip_address

import anyio
import httpcore
import httpx

from netguard.addresses import IPAddress, address_refusal
from netguard.errors import UrlRefused
from netguard.hosts import MALFORMED, host_allowed, parse_address, refusal
from netguard.resolve import Resolver, SystemResolver


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str] = (),
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allowed = tuple(allowed_hosts)
        self._resolver = resolver or SystemResolver()
        self._inner = inner or httpcore.AnyIOBackend()

    async def _addresses(self, host: str) -> Sequence[IPAddress]:
        try:
            literal = parse_address(host.lower().rstrip("."))
        except ValueError:
            raise UrlRefused(MALFORMED) from None
        if literal is not None:
            return [literal]
        try:
            answers = await self._resolver.resolve(host)
        except OSError as exc:
            raise httpcore.ConnectError("the host name does not resolve") from exc
        if not answers:
            raise httpcore.ConnectError("the host name does not resolve")
        return [ip_address(answer) for answer in answers]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        allowed = host_allowed(host, self._allowed)
        refused = None if allowed else refusal(host)
        if refused is not None:
            raise UrlRefused(refused)
        try:
            with anyio.fail_after(timeout):
                addresses = await self._addresses(host)
                if not allowed:
                    for address in addresses:
                        refused = address_refusal(address)
                        if refused is not None:
                            raise UrlRefused(refused, resolved=True)
                return await self._connect_any(addresses, port, local_address, socket_options)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("connecting timed out") from exc

    async def _connect_any(
        self,
        addresses: Sequence[IPAddress],
        port: int,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("a guarded fetch never uses a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def verifying_context(verify: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """`verify`, or the certifi bundle's context; refused unless it checks certificates and host
    names."""
    context = verify or httpx.create_ssl_context(trust_env=False)
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        raise ValueError("a guarded fetch verifies certificates and host names")
    return context


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request and exception mapping, HTTP/1.1) over a connection pool whose
    network backend is the guarded one. No proxy (nothing from the environment), no Unix socket."""

    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str] = (),
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | None = None,
        limits: httpx.Limits = httpx.Limits(max_connections=10, max_keepalive_connections=5),
    ) -> None:
        context = verifying_context(verify)
        super().__init__(verify=context, trust_env=False, limits=limits)
        # httpx has no parameter for the network backend; the pool it built above is replaced by
        # one with the same settings and the guarded backend (tests prove no connection escapes).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allowed_hosts=allowed_hosts, resolver=resolver),
        )
