"""Download the training data through the claim's ticket: streamed to disk, hashed on the way,
checked against the ticket's sha256 and size when it gives them.

An uploaded dataset comes from the platform's download URL, the ticket sent as a Bearer token (a
URL without one serves plain files: tests, a local data server). A URL a user gave
(`ticket.external`) is fetched only through netguard: public addresses only, checked when
connecting and on every redirect, never from https to http, at most `ticket.max_bytes`, within a
deadline. What the worker says about such a URL names the rule that stopped it, never what the
server sent.
"""

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from contracts.rpc import DataTicket
from gpu_worker.domain.errors import (
    DataCorrupted,
    DataRefused,
    DataUnavailable,
    TransientDownloadError,
)
from gpu_worker.domain.training import DataFormat
from gpu_worker.service_layer.ports import Downloaded
from netguard import (
    DeadlineExceeded,
    GuardedClient,
    RedirectRefused,
    Resolver,
    TooLarge,
    UrlRefused,
)

log = structlog.get_logger(__name__)

CHUNK = 1 << 20
# The cap for an external URL whose ticket names none (job-api always sends one).
DEFAULT_EXTERNAL_MAX_BYTES = 10 << 30


@dataclass(frozen=True)
class ExternalData:
    """How the worker fetches a URL a user gave: the operator's allow-list (hosts, or `.suffix`
    for every name below), and for tests a resolver and a CA of their own."""

    allowed_hosts: tuple[str, ...] = ()
    resolver: Resolver | None = None
    verify: ssl.SSLContext | None = None
    max_redirects: int = 5
    # Each try, redirects and the whole body included.
    deadline: float = 3600.0


def trusting(ca_file: Path | None) -> ssl.SSLContext | None:
    """The context that verifies external data servers: the public CAs (certifi's, as netguard
    uses by default) and an operator's own CA bundle; None when there is none (the default)."""
    if ca_file is None:
        return None
    context = httpx.create_ssl_context(trust_env=False)
    context.load_verify_locations(cafile=ca_file)
    return context


def guess_format(ticket: DataTicket, path: Path) -> DataFormat:
    """The ticket's format; else the URL's suffix; else the first byte (`{` starts a JSON line)."""
    if ticket.format is not None:
        return ticket.format
    suffix = Path(urlsplit(ticket.url).path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


async def _save(
    chunks: AsyncIterator[bytes],
    target: Path,
    expected: int | None,
    on_bytes: Callable[[int, int | None], None],
    *,
    resume: bool = False,
) -> tuple[int, str]:
    """Write the body to `target` (appended to what it holds with `resume`), hashing the whole
    file."""
    digest = hashlib.sha256()
    size = 0
    if resume:
        with target.open("rb") as done:
            while block := done.read(CHUNK):
                digest.update(block)
                size += len(block)
    with target.open("ab" if resume else "wb") as out:
        async for chunk in chunks:
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
            on_bytes(size, expected)
    return size, digest.hexdigest()


def _transient(status: int) -> bool:
    return status in (408, 429) or status >= 500


async def _fetch_platform(
    client: httpx.AsyncClient,
    ticket: DataTicket,
    target: Path,
    on_bytes: Callable[[int, int | None], None],
) -> tuple[int, str]:
    """One try. What an earlier try of this download wrote is kept: the rest is asked for with a
    Range request, and a server that ignores it (200) sends the whole file again."""
    headers = {"Authorization": f"Bearer {ticket.token}"} if ticket.token else {}
    have = await asyncio.to_thread(_size_of, target)
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        async with client.stream("GET", ticket.url, headers=headers) as response:
            status = response.status_code
            if _transient(status):
                raise TransientDownloadError(f"the data URL answered {status}")
            if status == 416 and have and ticket.size_bytes == have:
                # Everything had arrived before the link dropped.
                return await _save(_nothing(), target, have, on_bytes, resume=True)
            if status >= 400:
                raise DataUnavailable(
                    f"the data URL answered {status}: the dataset is gone or the "
                    "download ticket is no longer valid"
                )
            resume = bool(have) and status == 206
            if resume:
                log.info("data.download_resumed", from_byte=have)
            expected = _total(response)
            return await _save(
                response.aiter_bytes(CHUNK), target, expected, on_bytes, resume=resume
            )
    except httpx.TransportError as exc:
        raise TransientDownloadError(f"downloading the data failed: {exc!r}") from exc


def _size_of(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


def _total(response: httpx.Response) -> int | None:
    """The file's whole size: from Content-Range on a 206, else Content-Length."""
    ranged = response.headers.get("content-range", "")
    if response.status_code == 206 and "/" in ranged:
        whole = ranged.rsplit("/", 1)[1]
        return int(whole) if whole.isdigit() else None
    total = response.headers.get("content-length")
    return int(total) if total and total.isdigit() else None


_UPLOAD_INSTEAD = "upload the file instead"


async def _fetch_external(
    client: GuardedClient,
    ticket: DataTicket,
    target: Path,
    on_bytes: Callable[[int, int | None], None],
    deadline: float,
) -> tuple[int, str]:
    cap = ticket.max_bytes if ticket.max_bytes is not None else DEFAULT_EXTERNAL_MAX_BYTES
    try:
        async with client.stream("GET", ticket.url, max_bytes=cap, deadline=deadline) as response:
            status = response.status_code
            if _transient(status):
                raise TransientDownloadError(f"training_data_url answered HTTP {status}")
            if not 200 <= status < 300:
                raise DataUnavailable(
                    f"training_data_url answered HTTP {status}; check that the file is there "
                    f"and public, or {_UPLOAD_INSTEAD}."
                )
            chunks = response.aiter_bytes(CHUNK)
            return await _save(chunks, target, response.content_length, on_bytes)
    except (UrlRefused, RedirectRefused) as exc:
        raise DataRefused(
            f"training_data_url was refused: {exc}. Workers fetch training data only from "
            f"public https hosts; {_UPLOAD_INSTEAD}."
        ) from None
    except TooLarge as exc:
        raise DataRefused(
            f"the file at training_data_url is larger than {exc.max_bytes} bytes, the most a "
            f"worker downloads from a URL; {_UPLOAD_INSTEAD}."
        ) from None
    except DeadlineExceeded as exc:
        raise DataRefused(
            f"downloading training_data_url did not finish within {exc.seconds:g} seconds; "
            f"{_UPLOAD_INSTEAD}."
        ) from None
    except httpx.TransportError as exc:
        # Only the kind of failure: a message could quote what the server sent.
        raise TransientDownloadError(
            f"downloading training_data_url failed ({type(exc).__name__})"
        ) from None


async def download(
    ticket: DataTicket,
    target_dir: Path,
    *,
    on_bytes: Callable[[int, int | None], None] = lambda done, total: None,
    retry_for: float = 300,
    on_retry: Callable[[str], None] = lambda message: None,
    timeout: float = 60,
    verify: bool | str = True,
    external: ExternalData | None = None,
) -> Downloaded:
    """Download the ticket's file. Network trouble and 5xx answers are retried with back-off
    for up to `retry_for` seconds (the heartbeat keeps the lease meanwhile), resuming where the
    last try stopped: an outage of data-service shorter than that costs the job nothing."""
    await asyncio.to_thread(target_dir.mkdir, parents=True, exist_ok=True)
    partial = target_dir / "data.part"
    partial.unlink(missing_ok=True)
    fetch: Callable[[], Awaitable[tuple[int, str]]]
    async with AsyncExitStack() as stack:
        if ticket.external:
            rules = external or ExternalData()
            guarded = await stack.enter_async_context(
                GuardedClient(
                    allowed_hosts=rules.allowed_hosts,
                    resolver=rules.resolver,
                    verify=rules.verify,
                    timeout=timeout,
                    max_redirects=rules.max_redirects,
                )
            )

            def fetch() -> Awaitable[tuple[int, str]]:
                return _fetch_external(guarded, ticket, partial, on_bytes, rules.deadline)

        else:
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=httpx.Timeout(timeout), follow_redirects=True, verify=verify
                )
            )

            def fetch() -> Awaitable[tuple[int, str]]:
                return _fetch_platform(client, ticket, partial, on_bytes)

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0
            message = f"{error}; trying again in {wait:.0f} s (try {state.attempt_number + 1})"
            log.warning("data.download_retry", error=str(error)[:200], wait_seconds=wait)
            on_retry(message)

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TransientDownloadError),
            stop=stop_after_delay(retry_for),
            wait=wait_exponential(multiplier=0.5, max=15),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                size, sha256 = await fetch()
    if ticket.size_bytes is not None and size != ticket.size_bytes:
        partial.unlink(missing_ok=True)
        raise DataCorrupted(
            f"downloaded {size} bytes where the dataset has {ticket.size_bytes}: the file changed "
            "or the transfer was cut"
        )
    if ticket.sha256 is not None and sha256 != ticket.sha256.lower():
        partial.unlink(missing_ok=True)
        raise DataCorrupted(
            f"the downloaded file's sha256 ({sha256[:12]}...) does not match the dataset's "
            f"({ticket.sha256[:12]}...)"
        )
    data_format = guess_format(ticket, partial)
    path = target_dir / f"data.{data_format}"
    partial.replace(path)
    log.info("data.downloaded", size_bytes=size, sha256=sha256, format=data_format)
    return Downloaded(path=path, size_bytes=size, sha256=sha256, format=data_format)


@dataclass(frozen=True)
class Downloader:
    """The attempt's data source (gpu_worker.service_layer.ports.DataSource): `download` with the
    operator's rules for external URLs and the retry window of FTD_WORKER_DOWNLOAD_RETRY_SECONDS."""

    external: ExternalData = field(default_factory=ExternalData)
    retry_for: float = 300.0

    async def fetch(
        self, ticket: DataTicket, target_dir: Path, *, on_retry: Callable[[str], None]
    ) -> Downloaded:
        return await download(
            ticket, target_dir, external=self.external, retry_for=self.retry_for, on_retry=on_retry
        )
