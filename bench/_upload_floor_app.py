"""The same-work floor of bench/upload_throughput.py: a bare ASGI callable (no framework, no
middleware, no routes, no database, no events) that does what data-service's upload does to the
bytes and nothing else:

- reads the request body as uvicorn hands it over and parses multipart/form-data with the same
  push parser (python-multipart's `MultipartParser`), keeping views into the received chunks;
- gathers the file part's bytes into blocks of data-service's BLOCK_BYTES (one join per block);
- validates each block with data-service's own `Validation` (service_layer.validation.pipeline,
  the limits from data-service's `Settings`, read from the same environment) in one thread, and
  hashes it (sha256) and writes it with data-service's own local storage writer
  (`LocalStorage.writer`: O_DIRECT where the filesystem takes it, the tail buffered, fsync,
  rename, fsync of the folder) in a second thread, so parsing and storing overlap as they do in
  data-service;
- answers 201 with the size, the sha256 and the row count once the file is durable, or 422 with
  the validation summary (the file removed).

Served exactly like `data-service serve` (servicekit's CLI): one uvicorn process, uvicorn.run with
the same arguments (access log off, no log config), servicekit's logging set-up and the same
garbage-collector threshold.

Run: DATA_SERVICE_*/FTD_* environment as for data-service, then
  python bench/_upload_floor_app.py --port N --storage-dir DIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from python_multipart.multipart import MultipartParser, parse_options_header

from data_service.adapters.storage import LocalStorage, ObjectWriter
from data_service.config import Settings
from data_service.service_layer.validation.limits import BLOCK_BYTES, Limits
from data_service.service_layer.validation.pipeline import Validation
from servicekit.gctune import tune_gc
from servicekit.logging import configure_logging

# Blocks hashed/written behind the validator at most (data-service's store queue holds 4).
STORE_AHEAD = 4


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class _Parts:
    """python-multipart's callbacks: the `file` part's data as views into the received chunks."""

    def __init__(self) -> None:
        self.file_data: list[memoryview] = []
        self.in_file = False
        self.seen_file = False
        self.ended = False
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self.in_file = params.get(b"name") == b"file"
        if self.in_file:
            if self.seen_file:
                raise Refused(422, "too_many_files", "Send one file per upload.")
            self.seen_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file and end > start:
            self.file_data.append(memoryview(data)[start:end])

    def _part_end(self) -> None:
        self.in_file = False

    def _end(self) -> None:
        self.ended = True


class _Upload:
    """One upload: blocks validated in one thread, hashed and written in another."""

    def __init__(self, storage: LocalStorage, limits: Limits) -> None:
        self.validation = Validation(limits)
        self.sha = hashlib.sha256()
        self.key = f"datasets/{uuid.uuid4()}"
        self.writer: ObjectWriter = storage.writer(self.key)
        self.size = 0
        self._parts: list[memoryview] = []
        self._held = 0
        self._validate = ThreadPoolExecutor(1, thread_name_prefix="floor-validate")
        self._store = ThreadPoolExecutor(1, thread_name_prefix="floor-store")
        self._validating: asyncio.Future[None] | None = None
        self._stores: deque[Future[None]] = deque()

    def _store_block(self, block: bytes) -> None:
        self.sha.update(block)
        self.writer.write(block)

    async def _block(self, block: bytes) -> None:
        if self._validating is not None:
            await self._validating
        if self.validation.stopped:
            raise Refused(422, "invalid_dataset", self.validation.problems.summary())
        loop = asyncio.get_running_loop()
        self._validating = loop.run_in_executor(self._validate, self.validation.feed, block)
        self._stores.append(self._store.submit(self._store_block, block))
        while len(self._stores) > STORE_AHEAD:
            await asyncio.wrap_future(self._stores.popleft())

    async def add(self, data: list[memoryview]) -> None:
        for view in data:
            self.size += len(view)
            self._parts.append(view)
            self._held += len(view)
            while self._held >= BLOCK_BYTES:
                over = self._held - BLOCK_BYTES
                tail = None
                if over:
                    last = self._parts[-1]
                    self._parts[-1], tail = last[: len(last) - over], last[len(last) - over :]
                block = b"".join(self._parts)
                self._parts, self._held = ([tail] if tail is not None else []), over
                await self._block(block)

    async def finish(self) -> dict[str, Any]:
        if self._parts:
            await self._block(b"".join(self._parts))
            self._parts, self._held = [], 0
        loop = asyncio.get_running_loop()
        if self._validating is not None:
            await self._validating
        report = await loop.run_in_executor(self._validate, self.validation.finish)
        while self._stores:
            await asyncio.wrap_future(self._stores.popleft())
        if not report.valid:
            raise Refused(422, "invalid_dataset", report.problems.summary())
        await loop.run_in_executor(self._store, self.writer.commit)
        self._close()
        return {
            "key": self.key,
            "size_bytes": self.size,
            "sha256": self.sha.hexdigest(),
            "rows": report.rows,
            "format": report.format,
        }

    async def abort(self) -> None:
        """Waits for the blocks in flight, then removes what was written."""
        for future in [self._validating, *map(asyncio.wrap_future, self._stores)]:
            if future is not None:
                # The upload is being dropped: a block's own failure changes nothing.
                with contextlib.suppress(Exception):
                    await future
        self._stores.clear()
        self.validation.abort()
        await asyncio.get_running_loop().run_in_executor(self._store, self.writer.abort)
        self._close()

    def _close(self) -> None:
        self._validate.shutdown(wait=False)
        self._store.shutdown(wait=False)


def _boundary(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"content-type":
            kind, params = parse_options_header(value)
            if kind == b"multipart/form-data" and params.get(b"boundary"):
                return bytes(params[b"boundary"])
    raise Refused(415, "unsupported_media_type", "Send the file as multipart/form-data.")


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    data = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def make_app(storage: LocalStorage, limits: Limits) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await _answer(send, 200, {"status": "ok"})
            return
        if scope["path"] != "/api/finetune/upload" or scope["method"] != "POST":
            await _answer(send, 404, {"error": {"code": "not_found"}})
            return
        upload: _Upload | None = None
        try:
            parts = _Parts()
            parser = MultipartParser(_boundary(scope["headers"]), parts.callbacks())
            upload = _Upload(storage, limits)
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    await upload.abort()
                    return
                more = message.get("more_body", False)
                chunk = message.get("body", b"")
                if chunk:
                    parser.write(chunk)
                    if parts.file_data:
                        data, parts.file_data = parts.file_data, []
                        await upload.add(data)
            if not parts.ended or not parts.seen_file:
                raise Refused(400, "malformed_multipart", "No complete `file` part.")
            answer = await upload.finish()
        except Refused as exc:
            if upload is not None:
                await upload.abort()
            await _answer(send, exc.status, {"error": {"code": exc.code, "message": str(exc)}})
            return
        except BaseException:
            if upload is not None:
                await upload.abort()
            raise
        await _answer(send, 201, {"data": answer})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--storage-dir", type=Path, required=True)
    args = parser.parse_args()
    settings = Settings()
    # As servicekit's `serve` and its lifespan do for data-service.
    configure_logging(json_logs=settings.json_logs, level=settings.log_level)
    storage = LocalStorage(args.storage_dir, direct_io=settings.storage_direct_io)
    app = make_app(storage, settings.limits)
    tune_gc(gen0_threshold=settings.gc_gen0_threshold)
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_config=None)


if __name__ == "__main__":
    main()
