"""The transaction plumbing every service shares: one `Database` per process, built in the
lifespan and used by every entry point (HTTP routes, consumers, the RPC server, the watchdog,
streams), so they all open, admit and end their transactions the same way.

SQL runs on SQLAlchemy Core connections, not ORM sessions: the session layer cost about 0.4 ms a
statement here against about 0.1 ms for the same statement on the connection, and the services'
repositories only ever issue Core statements.

Connections are handed out through named admission pools (`http`, `rpc`, `consumer`, ...), each a
FIFO semaphore with a fixed size, so one kind of work cannot take the connections another kind
needs: a flood of claim requests or slow HTTP clients can never starve the outbox relay or the
event consumer. The pool sizes add up to at most the engine's pool size.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

U = TypeVar("U")


class FairSlots:
    """A counting semaphore that admits waiters strictly first come, first served.

    `asyncio.Semaphore` lets a task that arrives while a woken waiter has not run yet take the
    slot (the waiter then waits again), so under overload some requests starved for seconds; a
    FIFO of futures hands each released slot to the oldest waiter.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("an admission pool needs at least one slot")
        self.size = size
        self._free = size
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def in_use(self) -> int:
        return self.size - self._free

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed to us just as we were cancelled: pass it on.
                self.release()
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to the waiter, _free unchanged
                return
        self._free += 1

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()


def admission_pools(total: int, background: Mapping[str, int]) -> dict[str, int]:
    """Split `total` connections into the background pools asked for and `http`, which gets the
    rest. A total too small for that (tests) still gives every pool a slot of its own: the engine
    is sized to the sum, so it may then use a few more connections than asked for."""
    fixed = sum(background.values())
    if total < fixed + 1:
        return {**dict.fromkeys(background, 1), "http": max(1, total - len(background))}
    return {**background, "http": total - fixed}


class Database:
    """The engine, its autocommit view for reads, and the admission pools."""

    def __init__(self, engine: AsyncEngine, pools: Mapping[str, int]) -> None:
        self.engine = engine
        # Reads run in autocommit: one statement each, no BEGIN/COMMIT round trips.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.pools = {name: FairSlots(size) for name, size in pools.items()}

    @contextlib.asynccontextmanager
    async def write(self, pool: str = "http") -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends normally, rolled back when it raises.
        A failed COMMIT raises here, so the caller never reports success for it."""
        async with self.pools[pool].held(), self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self, pool: str = "http") -> AsyncIterator[AsyncConnection]:
        """An autocommit connection for reads; given back as soon as the block ends."""
        async with self.pools[pool].held(), self._autocommit.connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def write_one_statement(self, pool: str = "http") -> AsyncIterator[AsyncConnection]:
        """For a write that is ONE statement (reads around it allowed): no transaction block.
        PostgreSQL runs each statement atomically and commits it when it completes (deferred
        constraints included), so once the block ends the write is committed, and a failed one
        raised; it saves the BEGIN and COMMIT round trips. Two writes need `write`."""
        async with self.read(pool) as conn:
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


class Units(Generic[U]):
    """How every entry point of a service opens its unit of work (`U`, the service's class that
    holds the repositories of one connection): routes, consumers and periodic tasks alike.

    - `writing(pool)`: one transaction; the block's end commits it (or the exception rolls it
      back), then `after_commit(uow)` runs (e.g. removing files whose rows are gone). A failed
      COMMIT raises, so no caller reports success for it.
    - `reading(pool)`: an autocommit connection for reads.
    - `begin(pool)` and `on(conn)`: for a transaction someone else runs, the event consumer's
      batch: it opens the transaction with `begin`, and its handler builds the unit on it.
    """

    def __init__(
        self,
        db: Database,
        make: Callable[[AsyncConnection], U],
        *,
        after_commit: Callable[[U], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self._make = make
        self._after_commit = after_commit

    @contextlib.asynccontextmanager
    async def writing(self, pool: str = "http", *, one_statement: bool = False) -> AsyncIterator[U]:
        """`one_statement`: the block's only write is one statement, run without a transaction
        block (`Database.write_one_statement`)."""
        opened = self.db.write_one_statement(pool) if one_statement else self.db.write(pool)
        async with opened as conn:
            uow = self._make(conn)
            yield uow
        if self._after_commit is not None:
            await self._after_commit(uow)

    @contextlib.asynccontextmanager
    async def reading(self, pool: str = "http") -> AsyncIterator[U]:
        async with self.db.read(pool) as conn:
            yield self._make(conn)

    def begin(self, pool: str) -> Callable[[], AbstractAsyncContextManager[AsyncConnection]]:
        return lambda: self.db.write(pool)

    def on(self, conn: AsyncConnection) -> U:
        return self._make(conn)


def function_scoped(dependency: Any) -> Any:
    """`Depends(dependency)` whose teardown (commit, connection release) runs when the route
    function returns, before the response is sent.

    With the default request scope a `yield` dependency tears down after the response has gone
    out: the client could get a 201 for a transaction that then failed to commit, and a GET
    right after it could miss the row. Every unit-of-work dependency is declared through this.
    """
    return Depends(dependency, scope="function")
