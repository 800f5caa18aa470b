"""Streams one upload into storage while validating and hashing it, in one pass.

The event loop only gathers bytes into blocks; each block is validated in a worker thread while
the next one arrives, then hashed and written by one more thread behind it. Nothing is kept but
the current blocks, so memory is flat whatever the size. Any failure (too large, invalid, client
gone, storage error) aborts the writer: nothing is left behind.
"""

import asyncio
import hashlib
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from data_service.adapters.feed import Aborted
from data_service.adapters.storage import ObjectWriter
from data_service.domain.report import ValidationReport
from data_service.service_layer.validation.limits import BLOCK_BYTES
from data_service.service_layer.validation.pipeline import Validation

# Blocks waiting to be hashed or written: memory stays a few MiB whatever the file size.
STAGE_QUEUE_BLOCKS = 4


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


class _Stage:
    """A thread applying `step` to each block in order, behind a short queue. After an error
    it only drains the queue; the error is kept for the sink to raise."""

    def __init__(self, name: str, step: Callable[[bytes], object]) -> None:
        self._step = step
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=STAGE_QUEUE_BLOCKS)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._step(data)
                except BaseException as exc:
                    self.error = exc

    def put(self, data: bytes) -> None:
        self._queue.put(data)

    def close(self, error: BaseException | None = None) -> None:
        """Wait until every block is through (or skipped, given an `error`) and the thread ends."""
        if error is not None and self.error is None:
            self.error = error
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class _Sink:
    """Validation in the caller's worker thread; hashing then writing in one store thread behind
    it, so the parser and the store overlap (both release the GIL). The direct write is a copy
    into an aligned buffer and a DMA, too little for a thread of its own. A lock orders blocks
    and the abort."""

    def __init__(self, writer: ObjectWriter, validation: Validation) -> None:
        self.writer = writer
        self.validation = validation
        self.sha = hashlib.sha256()
        self.lock = threading.Lock()
        self.done = False
        self._store_stage = _Stage("upload-store", self._store)

    def _store(self, data: bytes) -> None:
        self.sha.update(data)
        self.writer.write(data)

    def block(self, data: bytes) -> None:
        with self.lock:
            if self.done or self.validation.stopped:
                return
            if (error := self._store_stage.error) is not None:
                raise error
            self.validation.feed(data)
            if not self.validation.stopped:
                self._store_stage.put(data)

    def finish(self) -> ValidationReport:
        with self.lock:
            report = self.validation.finish()
            self._store_stage.close()
            self.done = True
            if (error := self._store_stage.error) is not None:
                self.writer.abort()
                raise error
            if report.valid:
                self.writer.commit()  # durable before the caller commits the row
            else:
                self.writer.abort()
            return report

    def abort(self) -> None:
        with self.lock:
            if not self.done:
                self.done = True
                self.validation.abort()
                self._store_stage.close(Aborted())
                self.writer.abort()


class _Blocks:
    """Cuts the received chunks into blocks of exactly BLOCK_BYTES, copying each byte once (a
    join), not twice (appended to a buffer, then sliced off it)."""

    def __init__(self) -> None:
        self._parts: list[bytes | memoryview] = []
        self._held = 0

    def add(self, chunk: bytes | memoryview) -> list[bytes]:
        self._parts.append(chunk)
        self._held += len(chunk)
        out = []
        while self._held >= BLOCK_BYTES:
            over = self._held - BLOCK_BYTES
            tail: bytes | memoryview = b""
            if over:
                last = self._parts[-1]
                self._parts[-1], tail = last[: len(last) - over], last[len(last) - over :]
            out.append(b"".join(self._parts))
            self._parts, self._held = ([tail] if tail else []), over
        return out

    def rest(self) -> bytes:
        return b"".join(self._parts)


async def ingest(
    chunks: AsyncIterator[bytes | memoryview],
    *,
    writer: ObjectWriter,
    validation: Validation,
    max_bytes: int,
) -> Ingested:
    sink = _Sink(writer, validation)
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[None] | None = None
    blocks = _Blocks()
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(max_bytes)
            for block in blocks.add(chunk):
                if pending is not None:
                    await pending
                if validation.stopped:
                    break
                pending = loop.run_in_executor(None, sink.block, block)
            if validation.stopped:
                break
        if pending is not None:
            await pending
        if (last := blocks.rest()) and not validation.stopped:
            await loop.run_in_executor(None, sink.block, last)
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
