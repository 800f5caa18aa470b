"""Which storage failures are worth retrying, and retrying them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from gpu_worker.domain.errors import PublishError

T = TypeVar("T")


def status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def is_transient(exc: BaseException) -> bool:
    """Network trouble, timeouts, 429 and 5xx are transient; other HTTP statuses are refusals."""
    status = status_of(exc)
    if status is not None:
        return status == 429 or status >= 500
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


def call_with_retries(fn: Callable[[], T], *, attempts: int, max_wait_s: float, what: str) -> T:
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=max_wait_s),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )
    try:
        return retrying(fn)
    except Exception as exc:
        raise PublishError(
            f"{what} failed: {type(exc).__name__}: {exc}", retryable=is_transient(exc)
        ) from exc
