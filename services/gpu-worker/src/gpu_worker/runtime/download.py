"""Download the training data through the claim's URL: streamed to disk, hashed on the way, checked
against the ticket's sha256 and size when it gives them."""

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from contracts.rpc import DataTicket

log = structlog.get_logger(__name__)

CHUNK = 1 << 20
DataFormat = Literal["csv", "jsonl"]


class DataUnavailable(Exception):
    """The URL refused us for good (4xx): the dataset is gone or the ticket is not valid."""


class DataCorrupted(Exception):
    """The bytes that arrived are not the file the ticket describes."""


class TransientDownloadError(Exception):
    """Network trouble or a 5xx: worth another try."""


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size_bytes: int
    sha256: str
    format: DataFormat


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


async def _fetch_once(
    client: httpx.AsyncClient,
    url: str,
    target: Path,
    on_bytes: Callable[[int, int | None], None],
) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    try:
        async with client.stream("GET", url) as response:
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise TransientDownloadError(f"the data URL answered {response.status_code}")
            if response.status_code >= 400:
                raise DataUnavailable(
                    f"the data URL answered {response.status_code}: the dataset is gone or the "
                    "download ticket is no longer valid"
                )
            total = response.headers.get("content-length")
            expected = int(total) if total and total.isdigit() else None
            with target.open("wb") as out:
                async for chunk in response.aiter_bytes(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    on_bytes(size, expected)
    except httpx.TransportError as exc:
        raise TransientDownloadError(f"downloading the data failed: {exc!r}") from exc
    return size, digest.hexdigest()


async def download(
    ticket: DataTicket,
    target_dir: Path,
    *,
    on_bytes: Callable[[int, int | None], None] = lambda done, total: None,
    tries: int = 3,
    timeout: float = 60,
    verify: bool | str = True,
) -> Downloaded:
    await asyncio.to_thread(target_dir.mkdir, parents=True, exist_ok=True)
    partial = target_dir / "data.part"
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout), follow_redirects=True, verify=verify
    ) as client:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TransientDownloadError),
            stop=stop_after_attempt(tries),
            wait=wait_exponential(multiplier=0.5, max=10),
            reraise=True,
        ):
            with attempt:
                size, sha256 = await _fetch_once(client, ticket.url, partial, on_bytes)
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
