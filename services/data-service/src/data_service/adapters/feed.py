"""A blocking file-like object fed block by block from another thread: the storage writer's
thread pulls an upload from it, and so does pyarrow in the CSV validator (the service layer uses
this adapter; the adapters import nothing of the service layer)."""

import contextlib
import queue
import threading


class Aborted(Exception):
    """The upload stopped (error, disconnect): the reader's consumer must stop too."""


_EOF = b""


class BlockReader:
    def __init__(self, max_blocks: int = 4, read_credits: int | None = None) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max_blocks)
        self._current = memoryview(b"")
        self._eof = False
        self.closed = False
        # pyarrow reads up to 32 blocks ahead of the batches it hands out; with credits, each
        # read waits until the consumer has finished enough batches (memory stays bounded).
        self._credits = threading.Semaphore(read_credits) if read_credits else None
        self._aborted = False

    def batch_done(self) -> None:
        if self._credits is not None:
            self._credits.release()

    # --- producer side
    def put(self, block: bytes) -> None:
        if block:
            self._queue.put(block)

    def close_input(self) -> None:
        self._queue.put(_EOF)

    def abort(self) -> None:
        """Wake a blocked reader with an error (called from the producer's side)."""
        self._aborted = True
        if self._credits is not None:
            self._credits.release(1000)
        while True:
            try:
                self._queue.put_nowait(None)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()

    # --- consumer side (file-like)
    def _next(self) -> bool:
        item = self._queue.get()
        if item is None:
            raise Aborted
        if item == _EOF:
            self._eof = True
            return False
        self._current = memoryview(item)
        return True

    def read(self, size: int = -1) -> bytes:
        if self._credits is not None:
            self._credits.acquire()
            if self._aborted:
                raise Aborted
        parts: list[memoryview] = []
        want = size if size >= 0 else 1 << 62
        while want > 0:
            if not self._current and (self._eof or not self._next()):
                break
            take = self._current[:want]
            parts.append(take)
            self._current = self._current[len(take) :]
            want -= len(take)
        return b"".join(parts)  # the one copy

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
