"""Streams one upload into storage while validating and hashing it, in one pass.

The event loop only gathers bytes into blocks; each block is hashed, validated and written in a
worker thread while the next one arrives. Nothing is kept but the current blocks, so memory is
flat whatever the size. Any failure (too large, invalid, client gone, storage error) aborts the
writer: nothing is left behind.
"""

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from data_service.adapters.storage import ObjectWriter
from data_service.domain.report import ValidationReport
from data_service.service_layer.validation.limits import BLOCK_BYTES
from data_service.service_layer.validation.pipeline import Validation


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The file is larger than the limit of {limit:,} bytes.")
        self.limit = limit


@dataclass(frozen=True)
class Ingested:
    report: ValidationReport
    size_bytes: int
    sha256: str
    stored: bool


class _Sink:
    """The worker-thread side: hash, validate, write. A lock orders blocks and the abort."""

    def __init__(self, writer: ObjectWriter, validation: Validation) -> None:
        self.writer = writer
        self.validation = validation
        self.sha = hashlib.sha256()
        self.lock = threading.Lock()
        self.done = False

    def block(self, data: bytes) -> None:
        with self.lock:
            if self.done or self.validation.stopped:
                return
            self.sha.update(data)
            self.validation.feed(data)
            if not self.validation.stopped:
                self.writer.write(data)

    def finish(self) -> ValidationReport:
        with self.lock:
            report = self.validation.finish()
            if report.valid:
                self.writer.commit()  # durable before the caller commits the row
            else:
                self.writer.abort()
            self.done = True
            return report

    def abort(self) -> None:
        with self.lock:
            if not self.done:
                self.done = True
                self.validation.abort()
                self.writer.abort()


async def ingest(
    chunks: AsyncIterator[bytes],
    *,
    writer: ObjectWriter,
    validation: Validation,
    max_bytes: int,
) -> Ingested:
    sink = _Sink(writer, validation)
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[None] | None = None
    buf = bytearray()
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(max_bytes)
            buf += chunk
            while len(buf) >= BLOCK_BYTES:
                block = bytes(buf[:BLOCK_BYTES])
                del buf[:BLOCK_BYTES]
                if pending is not None:
                    await pending
                if validation.stopped:
                    break
                pending = loop.run_in_executor(None, sink.block, block)
            if validation.stopped:
                break
        if pending is not None:
            await pending
        if buf and not validation.stopped:
            await loop.run_in_executor(None, sink.block, bytes(buf))
        report = await loop.run_in_executor(None, sink.finish)
    except BaseException:
        # Waits for a block still in flight (the lock), then removes what was written.
        await asyncio.shield(loop.run_in_executor(None, sink.abort))
        raise
    return Ingested(
        report=report,
        size_bytes=size,
        sha256=sink.sha.hexdigest(),
        stored=report.valid,
    )
