"""Live job events for Server-Sent Events streams.

Every history insert NOTIFYs `<job id>:<user id>` (once per job it touches) in the same
transaction, delivered at commit to every job-api replica. One LISTEN connection per process
pokes the feeds the notice concerns: one feed per job (per-job streams), per user (a user's
all-jobs stream) and one for admins' all-jobs streams, found by key, not by scanning every stream.
A poked feed reads the rows after its cursor once, encodes each row as an SSE event once, and
hands the events to all its subscribers: a burst costs one query per feed, however many streams
watch it, and an idle stream does no database work at all.

A stream reads for itself only when it opens (the rows after its snapshot or Last-Event-ID) and
when it fell behind by more than `MAX_PENDING` events (a slow client); it drops any event it has
already sent (ids only grow along a stream), so nothing is lost between the snapshot and the live
tail and nothing is sent twice.
"""

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import structlog

log = structlog.get_logger(__name__)


# Rows a feed reads per query, and the events a stream may have waiting before it is told to
# catch up by reading for itself (a slow client must not make the process hold an unbounded queue).
BATCH = 500
MAX_PENDING = 1000


@dataclass(frozen=True)
class LiveEvent:
    id: int
    payload: bytes  # the encoded SSE event, shared by every stream it goes to


# (user_id, job_id, after_id, limit) -> the events after `after_id`, oldest first.
Reader = Callable[[str | None, UUID | None, int, int], Awaitable[list[LiveEvent]]]

# (cursor per job, limit) -> each job's events after its cursor, oldest first: one query for
# all the job feeds woken since the last read.
JobsReader = Callable[[dict[UUID, int], int], Awaitable[dict[UUID, list[LiveEvent]]]]

FeedKey = tuple[str, str]


def feed_key(*, user_id: str | None, job_id: UUID | None) -> FeedKey:
    if job_id is not None:
        # A job's rows all belong to its owner: the stream's scope was checked when it opened.
        return ("job", str(job_id))
    if user_id is not None:
        return ("user", user_id)
    return ("all", "")


class Subscription:
    """One stream's place in a feed: the events delivered to it and not yet sent."""

    def __init__(self, feed: "_Feed") -> None:
        self.feed = feed
        self.wake = asyncio.Event()
        self.pending: deque[LiveEvent] = deque()
        # Set when the stream fell more than MAX_PENDING events behind (pending dropped): it
        # reads what it missed itself.
        self.behind = False

    def deliver(self, events: list[LiveEvent]) -> None:
        if not self.behind:
            if len(self.pending) + len(events) > MAX_PENDING:
                self.behind = True
                self.pending.clear()
            else:
                self.pending.extend(events)
        self.wake.set()

    def take(self) -> list[LiveEvent]:
        """The events waiting (possibly none); clears the wake-up, so a later delivery sets it."""
        events = list(self.pending)
        self.pending.clear()
        self.wake.clear()
        return events

    def caught_up(self) -> None:
        """The stream is about to read for itself: what was queued is covered by that read."""
        self.behind = False
        self.pending.clear()


class _Feed:
    """The rows of one key, read once per wake-up and handed to every subscriber."""

    def __init__(
        self, key: FeedKey, reader: Reader, *, user_id: str | None, job_id: UUID | None, cursor: int
    ) -> None:
        self.key = key
        self._reader = reader
        self._user_id = None if job_id is not None else user_id
        self.job_id = job_id
        self.cursor = cursor
        self.subs: set[Subscription] = set()
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="live-feed")

    async def _run(self) -> None:
        # Notices that arrive while a read runs coalesce into one more read.
        while self._dirty and self.subs:
            self._dirty = False
            try:
                while self.subs:
                    events = await self._reader(self._user_id, self.job_id, self.cursor, BATCH)
                    self.deliver(events)
                    if len(events) < BATCH:
                        break
            except Exception as exc:  # the streams read for themselves and report the error
                log.warning("live.feed_read_failed", error=repr(exc))
                self.fail()
                return

    def deliver(self, events: list[LiveEvent]) -> None:
        if events:
            self.cursor = events[-1].id
            for sub in list(self.subs):
                sub.deliver(events)

    def fail(self) -> None:
        for sub in list(self.subs):
            sub.behind = True
            sub.wake.set()


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
    def __init__(self, dsn: str, channel: str, reader: Reader, jobs_reader: JobsReader) -> None:
        self._dsn = dsn
        self._channel = channel
        self._reader = reader
        self._jobs_reader = jobs_reader
        self._feeds: dict[FeedKey, _Feed] = {}
        # Job feeds woken since the last read: read together, one query per turn.
        self._woken_jobs: set[_Feed] = set()
        self._jobs_task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None

    @property
    def feeds(self) -> int:
        return len(self._feeds)

    def subscribe(self, *, user_id: str | None, job_id: UUID | None, after: int) -> Subscription:
        """Join the feed of (user, job), creating it with cursor `after` if none is open. The
        stream then reads the rows after `after` once itself: rows committed before it joined
        reach it through that read, later ones through the feed."""
        key = feed_key(user_id=user_id, job_id=job_id)
        feed = self._feeds.get(key)
        if feed is None:
            feed = _Feed(key, self._reader, user_id=user_id, job_id=job_id, cursor=after)
            self._feeds[key] = feed
        sub = Subscription(feed)
        feed.subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        feed = sub.feed
        feed.subs.discard(sub)
        if not feed.subs and self._feeds.get(feed.key) is feed:
            del self._feeds[feed.key]

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        job_id, _, user_id = payload.partition(":")
        for key in (("job", job_id), ("user", user_id), ("all", "")):
            feed = self._feeds.get(key)
            if feed is not None:
                self._poke(feed)

    def _poke(self, feed: _Feed) -> None:
        if feed.job_id is None:
            feed.poke()
            return
        self._woken_jobs.add(feed)
        if self._jobs_task is None or self._jobs_task.done():
            self._jobs_task = asyncio.create_task(self._read_jobs(), name="live-jobs")

    async def _read_jobs(self) -> None:
        """Read the woken job feeds together; notices that arrive meanwhile wait for the next
        turn (and coalesce: a job woken ten times meanwhile is read once)."""
        while self._woken_jobs:
            feeds = {f.job_id: f for f in self._woken_jobs if f.subs and f.job_id is not None}
            self._woken_jobs = set()
            if not feeds:
                continue
            try:
                found = await self._jobs_reader({j: f.cursor for j, f in feeds.items()}, BATCH)
            except Exception as exc:  # the streams read for themselves and report the error
                log.warning("live.feed_read_failed", error=repr(exc))
                for feed in feeds.values():
                    feed.fail()
                continue
            for job_id, events in found.items():
                feed = feeds[job_id]
                feed.deliver(events)
                if len(events) >= BATCH:
                    self._woken_jobs.add(feed)  # more to read

    async def run(self) -> None:
        """Keep one LISTEN connection open; on reconnect, poke every feed so none misses rows."""
        while True:
            try:
                lost = asyncio.Event()
                self._conn = await asyncpg.connect(self._dsn)
                self._conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await self._conn.add_listener(self._channel, self._on_notify)
                for feed in list(self._feeds.values()):
                    self._poke(feed)
                await lost.wait()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("live.listen_failed", error=str(exc))
            finally:
                if self._conn is not None and not self._conn.is_closed():
                    with contextlib.suppress(Exception):
                        await self._conn.close()
            await asyncio.sleep(1)
