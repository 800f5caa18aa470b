"""Live job events for Server-Sent Events streams.

Every history insert NOTIFYs `<job id>:<user id>` (once per job it touches) in the same
transaction, delivered at commit to every job-api replica. One LISTEN connection per process wakes
the streams whose filter matches; each stream then reads the rows after its last id, so a burst costs one query per
stream, replay after a reconnect (Last-Event-ID) uses the same path, and nothing is lost between
the snapshot and the live tail.
"""

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import structlog

log = structlog.get_logger(__name__)


@dataclass(eq=False)
class Subscription:
    user_id: str | None
    job_id: UUID | None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, job_id: str, user_id: str) -> bool:
        return (self.user_id is None or self.user_id == user_id) and (
            self.job_id is None or str(self.job_id) == job_id
        )


class TooManyStreams(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass
class StreamSlot:
    """One open stream's place in the limits; released once, however the stream ends."""

    limits: "StreamLimits"
    user_id: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.limits._release(self.user_id)


class StreamLimits:
    """Open SSE streams, capped per user and per process: each holds a socket, a task and a
    subscription for as long as the client stays, so one user (or a leak) cannot exhaust them."""

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._by_user: Counter[str] = Counter()
        self._open = 0

    @property
    def open(self) -> int:
        return self._open

    def acquire(self, user_id: str) -> StreamSlot:
        if self._open >= self.total:
            raise TooManyStreams(
                f"This server already serves {self.total} live streams; try again later."
            )
        if self._by_user[user_id] >= self.per_user:
            raise TooManyStreams(
                f"You already have {self.per_user} live streams open; close one first "
                "(one stream of all your jobs, /jobs/stream, replaces many per-job streams)."
            )
        self._by_user[user_id] += 1
        self._open += 1
        return StreamSlot(self, user_id)

    def _release(self, user_id: str) -> None:
        self._open -= 1
        self._by_user[user_id] -= 1
        if self._by_user[user_id] <= 0:
            del self._by_user[user_id]


class LiveHub:
    def __init__(self, dsn: str, channel: str) -> None:
        self._dsn = dsn
        self._channel = channel
        self._subs: set[Subscription] = set()
        self._conn: asyncpg.Connection | None = None

    def subscribe(self, *, user_id: str | None, job_id: UUID | None) -> Subscription:
        sub = Subscription(user_id=user_id, job_id=job_id)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        job_id, _, user_id = payload.partition(":")
        for sub in self._subs:
            if sub.matches(job_id, user_id):
                sub.wake.set()

    async def run(self) -> None:
        """Keep one LISTEN connection open; on reconnect, wake every stream so none misses rows."""
        while True:
            try:
                lost = asyncio.Event()
                self._conn = await asyncpg.connect(self._dsn)
                self._conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await self._conn.add_listener(self._channel, self._on_notify)
                for sub in self._subs:
                    sub.wake.set()
                await lost.wait()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("live.listen_failed", error=str(exc))
            finally:
                if self._conn is not None and not self._conn.is_closed():
                    with contextlib.suppress(Exception):
                        await self._conn.close()
            await asyncio.sleep(1)
