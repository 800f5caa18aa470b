"""Size limit while reading (413 before the rest is read), flat memory, and a client that
disconnects mid-upload leaving nothing behind."""

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
import sqlalchemy as sa
from data_service_testing import eventually, served, stored_files, user_headers
from sqlalchemy.ext.asyncio import AsyncEngine

from data_service.config import Settings
from data_service.entrypoints.app import create_app

pytestmark = pytest.mark.integration

BOUNDARY = b"BOUNDARY"
HEAD = (
    b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
    b"Content-Type: text/csv\r\n\r\ntext,label\r\n"
)
TAIL = b"\r\n--BOUNDARY--\r\n"
ROW = b"a reasonably ordinary training sentence,a\nanother ordinary training sentence,b\n"


def body(
    total_rows: int, sent: list[int], chunk_rows: int = 20_000
) -> Callable[[], AsyncIterator[bytes]]:
    async def gen() -> AsyncIterator[bytes]:
        yield HEAD
        chunk = ROW * chunk_rows
        left = total_rows
        while left > 0:
            n = min(left, chunk_rows)
            data = chunk if n == chunk_rows else ROW * n
            sent[0] += len(data)
            yield data
            left -= n
        yield TAIL

    return gen


async def test_over_limit_is_413_before_the_body_is_read(
    data_settings_factory: Callable[..., Settings], storage_dir: Path, data_db: AsyncEngine
) -> None:
    settings = data_settings_factory(max_upload_bytes=1 << 20)
    async with served(create_app(settings)) as url:
        # A raw client that sends a few MiB of a chunked body, then waits: the answer comes now.
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(
            b"POST /api/finetune/upload HTTP/1.1\r\nHost: test\r\n"
            + f"Authorization: {user_headers()['Authorization']}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=BOUNDARY\r\n"
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        await writer.drain()
        sent = 0
        chunk = ROW * 20_000
        for piece in (HEAD, chunk, chunk, chunk):
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            sent += len(piece)
        await writer.drain()
        async with asyncio.timeout(20):
            status_line = await reader.readline()
        assert status_line.startswith(b"HTTP/1.1 413"), status_line
        assert sent < 8 << 20  # of a body that would have gone on for 64 MiB
        writer.transport.abort()
        # A declared oversize body is refused at once, before authentication.
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(
            b"POST /api/finetune/upload HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: multipart/form-data; boundary=B\r\n"
            + f"Content-Length: {10 << 20}\r\n\r\n".encode()
            + b"x" * 1024
        )
        await writer.drain()
        async with asyncio.timeout(20):
            status_line = await reader.readline()
        assert status_line.startswith(b"HTTP/1.1 413"), status_line
        writer.transport.abort()
    assert stored_files(storage_dir) == []
    async with data_db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM data.datasets")) == 0


async def test_memory_stays_flat_while_a_large_file_streams_in(
    data_client: httpx.AsyncClient, storage_dir: Path
) -> None:
    # Warm up first (imports, pyarrow's pool, thread stacks): what is measured is the upload.
    warm = await data_client.post(
        "/api/finetune/upload",
        headers={**user_headers(), "content-type": "multipart/form-data; boundary=BOUNDARY"},
        content=body((16 << 20) // len(ROW), [0])(),
    )
    assert warm.status_code == 201, warm.text
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = [baseline]
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    sent = [0]
    rows = (160 << 20) // len(ROW)
    try:
        r = await data_client.post(
            "/api/finetune/upload",
            headers={**user_headers(), "content-type": "multipart/form-data; boundary=BOUNDARY"},
            content=body(rows, sent)(),
        )
    finally:
        done.set()
        await sampler
    assert r.status_code == 201, r.text
    assert r.json()["data"]["rows"] == 2 * rows
    size = sent[0]
    growth = peak[0] - baseline
    # The client, the server and the validator share this process; none holds the file.
    assert growth < 64 << 20, (growth >> 20, size >> 20)


async def test_client_disconnect_mid_upload_leaves_nothing(
    data_url: str, storage_dir: Path, data_db: AsyncEngine
) -> None:
    parts = urlsplit(data_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    token = user_headers()["Authorization"]
    declared = 50 << 20
    writer.write(
        b"POST /api/finetune/upload HTTP/1.1\r\nHost: test\r\n"
        + f"Authorization: {token}\r\n".encode()
        + b"Content-Type: multipart/form-data; boundary=BOUNDARY\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
        + HEAD
    )
    chunk = ROW * 20_000
    for _ in range(6):
        writer.write(chunk)
        await writer.drain()

    async def partial_file_exists() -> bool:
        return bool(stored_files(storage_dir, "*.part"))

    await eventually(partial_file_exists)
    writer.transport.abort()

    async def nothing_left() -> bool:
        return stored_files(storage_dir) == []

    await eventually(nothing_left)
    async with data_db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM data.datasets")) == 0
    del reader
