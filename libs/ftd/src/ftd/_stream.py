"""Following one job's event stream (SSE): what both clients' `Job.events()` share.

The stream (GET /api/finetune/jobs/{id}/stream) opens with a `snapshot` event, then sends each
history row as a `status` or `progress` event whose `id` is the row id; it never ends by itself.
`StreamState` remembers the last id seen, so a reconnect sends `Last-Event-ID` and the server
sends only what was missed (and no second snapshot); it says when the job has ended.
"""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import ServerSentEvent

from ftd.errors import RateLimited, ServiceUnavailable, WaitTimeout
from ftd.models import JobEvent, JobInfo, JobSnapshot

# With the server's keep-alive pings every 15 s, a read that waits this long means a dead link.
STALL_SECONDS = 45.0
MAX_BACKOFF_SECONDS = 10.0
RECONNECT_ERRORS = (RateLimited, ServiceUnavailable)
# What ends one connection of a stream but not the stream: it reconnects after a back-off.
STREAM_RETRY = (httpx.TransportError, *RECONNECT_ERRORS)


@dataclass
class StreamState:
    """Where a stream stands: the last event id, whether the job has ended, reconnect back-off."""

    last_id: int | None = None
    deadline: float | None = None
    max_reconnects: int = 8
    job: JobInfo | None = None
    ended: bool = False
    failures: int = 0
    connections: int = 0
    retry_ms: int | None = field(default=None, repr=False)

    @classmethod
    def start(cls, *, since: int | None, timeout: float | None) -> "StreamState":
        """A stream from after event `since` (None: from a snapshot), for `timeout` seconds."""
        return cls(last_id=since, deadline=None if timeout is None else time.monotonic() + timeout)

    def request(self, connect_timeout: float | None) -> dict[str, Any]:
        """The arguments of the next connection's GET: Last-Event-ID, and a read timeout that
        notices a dead link or the deadline."""
        timeout = httpx.Timeout(connect_timeout, read=self.read_timeout())
        return {"headers": self.headers(), "timeout": timeout}

    def closed(self) -> None:
        """A connection ended: fine once the job has, else a dropped link to reconnect."""
        if not self.ended:
            raise httpx.RemoteProtocolError("the server closed the stream")

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        return headers

    def read_timeout(self) -> float:
        return max(0.1, min(STALL_SECONDS, self.remaining()))

    def remaining(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def check_deadline(self) -> None:
        if self.remaining() <= 0:
            raise WaitTimeout("The job did not end before the timeout.", code="wait_timeout")

    def feed(self, sse: ServerSentEvent) -> JobEvent | JobSnapshot | None:
        """The event an SSE message carries (None for one to skip), and the state it leaves."""
        if sse.retry is not None:
            self.retry_ms = sse.retry
        if not sse.data:
            return None
        event_id = int(sse.id) if sse.id and sse.id.isdecimal() else None
        if event_id is not None and self.last_id is not None and event_id <= self.last_id:
            return None  # already seen (ids only grow along a stream)
        item: JobEvent | JobSnapshot
        if sse.event == "snapshot":
            job = JobInfo.model_validate(json.loads(sse.data))
            item = JobSnapshot(id=event_id or 0, job=job)
            self.job = job
            self.ended = job.status.is_terminal
        else:
            item = JobEvent.model_validate_json(sse.data)
            status = item.to_status
            if status is not None and self.job is not None:
                self.job = self.job.model_copy(update={"status": status})
            self.ended = status is not None and status.is_terminal
        if event_id is not None:
            self.last_id = event_id
        self.failures = 0
        return item

    def take(self, sse: ServerSentEvent) -> Iterator[JobEvent | JobSnapshot]:
        """The event an SSE message carries, if it is one to pass on."""
        item = self.feed(sse)
        if item is not None:
            yield item

    def done(self) -> bool:
        """True once the job has ended; WaitTimeout past the deadline."""
        if not self.ended:
            self.check_deadline()
        return self.ended

    def connected(self) -> None:
        self.connections += 1

    def backoff(self, exc: BaseException) -> float:
        """After a dropped or refused connection: how long to wait before the next, or raise."""
        self.failures += 1
        if self.failures > self.max_reconnects:
            raise exc
        self.check_deadline()
        if self.retry_ms is not None and not isinstance(exc, RECONNECT_ERRORS):
            delay = self.retry_ms / 1000
        else:
            delay = min(MAX_BACKOFF_SECONDS, 0.25 * 2 ** (self.failures - 1))
        return max(0.0, min(delay, self.remaining()))
