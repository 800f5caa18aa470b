"""Live job events for Server-Sent Events streams.

Every history insert NOTIFYs `<job id>:<user id>` (once per job it touches) in the same
transaction, delivered at commit to every job-api replica. One LISTEN connection per process wakes
the streams whose filter matches; each stream then reads the rows after its last id, so a burst costs one query per
stream, replay after a reconnect (Last-Event-ID) uses the same path, and nothing is lost between
the snapshot and the live tail.
"""

import asyncio
import contextlib
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
