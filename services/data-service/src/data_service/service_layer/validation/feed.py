"""A blocking file-like object fed block by block from another thread (pyarrow pulls from it)."""

import queue


class Aborted(Exception):
    """The upload stopped (error, disconnect): the reader's consumer must stop too."""


_EOF = b""


class BlockReader:
    def __init__(self, max_blocks: int = 4) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=max_blocks)
        self._current = memoryview(b"")
        self._eof = False
        self.closed = False

    # --- producer side
    def put(self, block: bytes) -> None:
        if block:
            self._queue.put(block)

    def close_input(self) -> None:
        self._queue.put(_EOF)

    def abort(self) -> None:
        """Wake a blocked reader with an error (called from the producer's side)."""
        while True:
            try:
                self._queue.put_nowait(None)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass

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
        parts: list[bytes] = []
        want = size if size >= 0 else 1 << 62
        while want > 0:
            if not self._current:
                if self._eof or not self._next():
                    break
            take = self._current[:want]
            parts.append(bytes(take))
            self._current = self._current[len(take) :]
            want -= len(take)
        return b"".join(parts)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True
