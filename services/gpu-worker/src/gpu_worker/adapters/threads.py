"""Blocking work (training, pushing) in a daemon thread, awaited from the event loop.

Not asyncio.to_thread: its executor threads are joined at interpreter exit, so a trainer that
ignores a stop request would keep a SIGTERMed worker alive. A daemon thread dies with the process.
"""

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _settle(future: "asyncio.Future[T]", result: T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


async def run_in_thread(fn: Callable[..., T], *args: Any, name: str) -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:
            # The loop may be gone already (the worker exited without waiting for us).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future
