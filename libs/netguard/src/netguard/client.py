"""A fetch on a user's behalf: public hosts only (checked from the URL's text, then at connect
time), redirects followed by hand and each one checked again, never from https to http, a byte
cap and one deadline over everything."""

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self

import httpx

from netguard.addresses import Refusal
from netguard.errors import DeadlineExceeded, RedirectRefused, TooLarge, UrlRefused
from netguard.hosts import host_allowed, refusal
from netguard.resolve import Resolver
from netguard.transport import GuardedTransport

_NOT_HTTPS = Refusal("scheme", "not reached over https")


class GuardedResponse:
    """The last response of a fetch (after its redirects). Its body is read through
    `aiter_bytes`, which stops at the byte cap."""

    def __init__(self, response: httpx.Response, *, max_bytes: int | None, redirects: int) -> None:
        self._response = response
        self.max_bytes = max_bytes
        self.redirects = redirects

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    @property
    def url(self) -> httpx.URL:
        return self._response.url

    @property
    def content_length(self) -> int | None:
        value = self._response.headers.get("content-length", "")
        return int(value) if value.isdigit() else None

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The body, decoded; TooLarge as soon as it is known to exceed the cap (a Content-Length
        above it: before reading anything)."""
        cap = self.max_bytes
        length = self.content_length
        if cap is not None and length is not None and length > cap:
            raise TooLarge(cap)
        received = 0
        async for chunk in self._response.aiter_bytes(chunk_size):
            received += len(chunk)
            if cap is not None and received > cap:
                raise TooLarge(cap)
            yield chunk

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])


def guarded_http(
    *,
    allowed_hosts: Iterable[str],
    resolver: Resolver | None,
    timeout: float | httpx.Timeout,
    headers: Mapping[str, str],
    verify: ssl.SSLContext | None = None,
    limits: httpx.Limits | None = None,
) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through `GuardedTransport`: no proxy or
    certificate setting from the environment, and no redirect followed (whoever follows one checks
    it first)."""
    transport = GuardedTransport(
        allowed_hosts=allowed_hosts,
        resolver=resolver,
        verify=verify,
        **({"limits": limits} if limits is not None else {}),
    )
    return httpx.AsyncClient(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        timeout=timeout,
        headers=dict(headers),
    )


class GuardedHttp:
    """Holds one `guarded_http` client (`_client`); closed by `aclose` or on leaving `async with`."""

    _client: httpx.AsyncClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()


class GuardedClient(GuardedHttp):
    """Fetches URLs users give. `allowed_hosts` (hosts, or `.suffix` for every name below) are an
    operator's exceptions to the host rules; `resolver` replaces the system's (tests); `verify` a
    context with other trusted CAs (it must still verify)."""

    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str] = (),
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_redirects: int = 5,
        https_only: bool = True,
        user_agent: str = "finetune-dispatcher",
    ) -> None:
        self._allowed = tuple(allowed_hosts)
        self._max_redirects = max_redirects
        self._https_only = https_only
        self._client = guarded_http(
            allowed_hosts=self._allowed,
            resolver=resolver,
            verify=verify,
            timeout=timeout,
            # A compressed body could expand far past the cap within one chunk.
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
        )

    def _check(self, url: httpx.URL, hop: int) -> None:
        if url.scheme != "https" and (self._https_only or url.scheme != "http"):
            if hop:
                raise RedirectRefused("it leads to a URL that is not https", hop=hop)
            raise UrlRefused(_NOT_HTTPS)
        if host_allowed(url.host, self._allowed):
            return
        refused = refusal(url.host)
        if refused is not None:
            raise UrlRefused(refused, hop=hop)

    async def _follow(self, request: httpx.Request) -> tuple[httpx.Response, int]:
        hop = 0
        while True:
            self._check(request.url, hop)
            try:
                response = await self._client.send(request, stream=True)
            except UrlRefused as exc:
                raise exc.at_hop(hop) from None
            following = response.next_request
            if following is None:
                return response, hop
            await response.aclose()
            hop += 1
            if hop > self._max_redirects:
                raise RedirectRefused(f"more than {self._max_redirects} redirects", hop=hop)
            if request.url.scheme == "https" and following.url.scheme != "https":
                raise RedirectRefused("it goes from https to plain http", hop=hop)
            request = following

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        max_bytes: int | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[GuardedResponse]:
        """The final response of `url` after at most `max_redirects` redirects, open for reading
        within the block. `deadline` (seconds) bounds everything, the block's reading included."""
        timeout = asyncio.timeout(deadline)
        try:
            async with timeout:
                request = self._client.build_request(method, url, headers=headers, content=content)
                response, redirects = await self._follow(request)
                try:
                    yield GuardedResponse(response, max_bytes=max_bytes, redirects=redirects)
                finally:
                    await response.aclose()
        except TimeoutError:
            if deadline is not None and timeout.expired():
                raise DeadlineExceeded(deadline) from None
            raise
