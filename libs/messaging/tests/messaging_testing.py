"""Helpers shared by the messaging tests (importable: pytest's `pythonpath` lists this folder).

The tests run the library against a tiny schema of their own: the outbox and inbox tables exactly
as services declare them, plus an `effects` table a consumer's handler writes to, so a test can
count how often an event took effect.
"""

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from contracts.enums import GPUProvider, JobStatus, JobType
from contracts.events import JobCreated, JobProgress, JobStatusChanged
from contracts.routing import BrokerNames
from messaging.broker import Broker
from messaging.inbox import inbox_table
from messaging.outbox import outbox_sequences_table, outbox_table
from messaging.topology import QueueSpec, declare_core, declare_queue

ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

SCHEMA = "msg"
NOTIFY_CHANNEL = "msg_outbox"

metadata = sa.MetaData(schema=SCHEMA)
OUTBOX = outbox_table(metadata)
SEQUENCES = outbox_sequences_table(metadata)
INBOX = inbox_table(metadata)
# Not unique on purpose: an event applied twice shows up as two rows.
EFFECTS = sa.Table(
    "effects",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
)
TABLES = ("msg.outbox", "msg.outbox_sequences", "msg.inbox", "msg.effects")


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 10, interval: float = 0.02
) -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last result: {result!r})")
        await asyncio.sleep(interval)


@dataclass
class Topology:
    """A broker namespace of one test: the core (events exchange, dead-letter exchange and queue)
    plus whatever queues the test declares; all deleted afterwards."""

    broker: Broker
    names: BrokerNames
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)

    async def declare(self, name: str, bindings: Sequence[str] = (), **kwargs: Any) -> str:
        """Declare `<prefix><name>` bound to `bindings` (on the events exchange, or on the direct
        exchange `exchange=` names); returns the full queue name."""
        full = f"{self.names.prefix}{name}"
        channel = await self.broker.channel()
        try:
            await declare_queue(
                channel, self.names, QueueSpec(name=full, bindings=bindings, **kwargs)
            )
        finally:
            await channel.close()
        self.queues.append(full)
        if kwargs.get("exchange"):
            self.exchanges.append(kwargs["exchange"])
        return full

    async def declare_core(self) -> None:
        channel = await self.broker.channel()
        try:
            await declare_core(channel, self.names)
        finally:
            await channel.close()

    async def depth(self, queue: str) -> int:
        """Ready messages in `queue`."""
        channel = await self.broker.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
        finally:
            await channel.close()

    async def drain(self, queue: str) -> list[Any]:
        """Take every ready message off `queue` (acknowledged)."""
        channel = await self.broker.channel()
        taken = []
        try:
            q = await channel.get_queue(queue)
            while (message := await q.get(no_ack=True, fail=False)) is not None:
                taken.append(message)
        finally:
            await channel.close()
        return taken


def status_changed(job_id: uuid.UUID | None = None) -> JobStatusChanged:
    """A broadcast (not must_route) event, routing key `job.status_changed`."""
    return JobStatusChanged(
        job_id=job_id or uuid.uuid4(),
        user_id="alice",
        from_status=JobStatus.PENDING,
        to_status=JobStatus.RUNNING,
        attempt=1,
    )


def job_created(job_id: uuid.UUID | None = None) -> JobCreated:
    """A must_route event, routing key `job.created.embedding.local`."""
    return JobCreated(
        job_id=job_id or uuid.uuid4(),
        user_id="alice",
        job_type=JobType.EMBEDDING,
        gpu_provider=GPUProvider.LOCAL,
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        output_model="alice/model",
        hyperparameters={},
        created_at=datetime.now(UTC),
    )


def progress(value: float, job_id: uuid.UUID | None = None) -> JobProgress:
    return JobProgress(
        job_id=job_id or uuid.uuid4(),
        attempt=1,
        worker_id="w1",
        claim_secret="test-claim-secret",
        progress=value,
    )


class TcpProxy:
    """A TCP forwarder on 127.0.0.1:<ephemeral port> in front of `host:port`, for outage tests.

    `cut()` makes the target unreachable: every open connection is dropped and new ones are
    closed on arrival, until `restore()`. Point a client (e.g. a database URL) at `self.port`.
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.down = False
        self.port = 0

    async def __aenter__(self) -> "TcpProxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        self.down = True
        self._drop_all()

    def restore(self) -> None:
        self.down = False

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                if self.down:
                    break
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)
