"""What the sync and async clients share: each API operation as a `Call` (method, path, body, how
to read the answer), the `{"data": ...}` envelope, pages, and which failures are retried.

A call is retried (tenacity) when the server could not have acted on it: the connection was
never made, the answer was 503, or the server said to try again shortly (`dataset_not_ready`: a
job naming a dataset uploaded a moment ago). Calls that are safe to send twice (GETs, and a job
creation with its Idempotency-Key) are also retried after a connection that broke mid-way. A
Retry-After the server sent sets the wait.
"""

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel
from tenacity import RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tenacity.wait import wait_base

from ftd.errors import ConnectionFailed, FtdError, ServiceUnavailable, raise_for_response
from ftd.version import __version__

# Error codes that say "the same request will work in a moment".
RETRY_CODES = frozenset({"dataset_not_ready"})
MAX_RETRY_AFTER_SECONDS = 30.0

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Page(list[T]):
    """One page of a list: a list, plus the cursor of the next page (None on the last)."""

    def __init__(self, items: Iterable[T], next_cursor: str | None = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor

    @property
    def has_more(self) -> bool:
        return bool(self.next_cursor)


def unwrap(body: Any) -> Any:
    """The payload of a `{"data": ...}` envelope (a body without one is returned as it is)."""
    if isinstance(body, dict) and "data" in body:
        return body["data"]
    return body


def one(model: type[M]) -> Callable[[Any], M]:
    def parse(body: Any) -> M:
        return model.model_validate(unwrap(body))

    return parse


def many(model: type[M]) -> Callable[[Any], list[M]]:
    def parse(body: Any) -> list[M]:
        return [model.model_validate(item) for item in unwrap(body)]

    return parse


def page(model: type[M]) -> Callable[[Any], Page[M]]:
    def parse(body: Any) -> Page[M]:
        cursor = body.get("next_cursor") if isinstance(body, dict) else None
        return Page((model.model_validate(item) for item in unwrap(body)), cursor or None)

    return parse


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    # Safe to send again after a connection broke mid-way (the server may have acted on it).
    resend_safe: bool = False

    def request_kwargs(self) -> dict[str, Any]:
        params = {k: v for k, v in (self.params or {}).items() if v is not None}
        return {
            "params": {k: str(v) for k, v in params.items()},
            "json": self.json,
            "headers": dict(self.headers),
            "files": self.files,
            "data": self.data,
        }

    def read(self, response: httpx.Response) -> T:
        raise_for_response(response)
        return self.parse(response.json() if response.content else None)


def client_headers(token: str | None) -> dict[str, str]:
    """What every request of a client carries."""
    headers = {"User-Agent": f"ftd-python/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def unreachable(base_url: str, exc: httpx.TransportError) -> ConnectionFailed:
    return ConnectionFailed(f"Could not reach {base_url}: {exc}", code="connection_failed")


def get(path: str, parse: Callable[[Any], T], **params: Any) -> Call[T]:
    return Call("GET", path, parse, params=params, resend_safe=True)


def idempotency_key() -> str:
    """A fresh key per job creation; its retries send the same one."""
    return f"ftd-{uuid.uuid4()}"


def retryable(exc: BaseException, *, resend_safe: bool) -> bool:
    if isinstance(exc, ServiceUnavailable):
        return True
    if isinstance(exc, FtdError) and exc.code in RETRY_CODES:
        return True
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    return resend_safe and isinstance(exc, httpx.TransportError)


class WaitRetryAfter(wait_base):
    """The server's Retry-After when it sent one (capped), else `fallback`."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        asked = getattr(exc, "retry_after", None)
        if isinstance(asked, float):
            return min(asked, MAX_RETRY_AFTER_SECONDS)
        return float(self.fallback(retry_state))


def retry_policy(retries: int, *, resend_safe: bool) -> dict[str, Any]:
    """tenacity's arguments for one call."""
    return {
        "stop": stop_after_attempt(retries + 1),
        "wait": WaitRetryAfter(wait_exponential_jitter(multiplier=0.5, max=8, jitter=0.5)),
        "retry": retry_if_exception(lambda exc: retryable(exc, resend_safe=resend_safe)),
        "reraise": True,
    }
