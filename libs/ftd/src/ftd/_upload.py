"""A file handed to httpx's multipart encoder that reports how much of it has been sent.

httpx reads a file part in 64 KiB chunks as it sends them (never the whole file into memory) and
seeks back to the start before each send, so a retried upload reports from zero again.
"""

import os
from collections.abc import Callable
from typing import BinaryIO

Progress = Callable[[int, int | None], None]
"""Called as `progress(bytes_sent, total_bytes)` while a file uploads."""


class ProgressFile:
    def __init__(self, file: BinaryIO, progress: Progress | None) -> None:
        self._file = file
        self._progress = progress
        self.sent = 0
        try:
            self.total: int | None = os.fstat(file.fileno()).st_size
        except (AttributeError, OSError, ValueError):
            self.total = None

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        if chunk:
            self.sent += len(chunk)
            if self._progress is not None:
                self._progress(self.sent, self.total)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._file.seek(offset, whence)
        self.sent = position
        return position

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()
