"""Coalescing concurrent requests into one forward pass (what TEI and vLLM do).

A model runs one forward at a time. While it runs, the requests that arrive wait in a queue; when
it ends, everything queued (up to `max_texts` texts; a larger request goes alone) is run as one
call, whose results are handed back to each request in order. Nothing waits on a timer: a request
that finds the model idle starts at once, so a lone caller pays no added latency, and under
concurrency many batch-1 requests share one forward instead of queueing for one each. One thread
hop per forward, not per request.

Errors stay with their request: when a coalesced call fails, each request in it is run on its own,
so only the one that fails again gets the error. A request cancelled while it waits is dropped
from the next call; one cancelled during a call leaves the others' results intact.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

R = TypeVar("R")

Run = Callable[[list[str]], Sequence[R]]
"""A blocking call from texts to one result per text, in order (run in a worker thread)."""


@dataclass
class _Waiting(Generic[R]):
    texts: list[str]
    future: asyncio.Future[list[R]] = field(repr=False)


class MicroBatcher(Generic[R]):
    def __init__(self, run: Run[R], *, max_texts: int = 64, name: str = "") -> None:
        if max_texts < 1:
            raise ValueError("max_texts must be at least 1")
        self._run = run
        self._max_texts = max_texts
        self._name = name
        self._queue: deque[_Waiting[R]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self.calls = 0  # forward calls made so far (how many requests each served: tests, stats)

    async def submit(self, texts: list[str]) -> list[R]:
        """One result per text of `texts`, from a call shared with whatever else is waiting."""
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(list(texts), future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name=f"batcher:{self._name}")
        return await future

    def _take(self) -> list[_Waiting[R]]:
        """The next call's requests: the oldest still waiting, then more while they fit."""
        taken: list[_Waiting[R]] = []
        size = 0
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # cancelled while waiting
                self._queue.popleft()
                continue
            if taken and size + len(head.texts) > self._max_texts:
                break
            taken.append(self._queue.popleft())
            size += len(head.texts)
        return taken

    async def close(self) -> None:
        """Stop: whoever still waits gets an error (the model is being unloaded)."""
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._fail(list(self._queue))
        self._queue.clear()

    async def _drain(self) -> None:
        batch: list[_Waiting[R]] = []
        try:
            while batch := self._take():
                await self._serve(batch)
        finally:
            # Cancelled (shutdown): whoever still waits is told, not left hanging.
            self._fail([*batch, *self._queue])
            self._queue.clear()

    @staticmethod
    def _fail(waiting: list[_Waiting[R]]) -> None:
        for w in waiting:
            _settle(w, error=RuntimeError("the model was unloaded"))

    async def _serve(self, batch: list[_Waiting[R]]) -> None:
        texts = [t for w in batch for t in w.texts]
        self.calls += 1
        try:
            results = await asyncio.to_thread(self._checked, texts)
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0], error=error)
                return
            log.warning("batcher.call_failed", batcher=self._name, requests=len(batch))
            for w in batch:  # each on its own: only the request at fault fails
                if w.future.done():
                    continue
                self.calls += 1
                try:
                    _settle(w, results=await asyncio.to_thread(self._checked, w.texts))
                except Exception as own:
                    _settle(w, error=own)
            return
        start = 0
        for w in batch:
            _settle(w, results=results[start : start + len(w.texts)])
            start += len(w.texts)

    def _checked(self, texts: list[str]) -> list[R]:
        results = list(self._run(texts))
        if len(results) != len(texts):
            raise RuntimeError(f"{len(results)} results for {len(texts)} texts")
        return results


def _settle(
    waiting: _Waiting[R], *, results: list[R] | None = None, error: BaseException | None = None
) -> None:
    if waiting.future.done():  # its caller gave up (cancelled): nobody to tell
        return
    if error is not None:
        waiting.future.set_exception(error)
    else:
        assert results is not None
        waiting.future.set_result(results)
