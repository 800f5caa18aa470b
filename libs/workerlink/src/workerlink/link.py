"""The worker's one connection to the broker (it dials out; it needs no inbound port).

A robust aio-pika connection: after a broker restart or a dropped link it reconnects and restores
the channels, the reply and cancel queues and their consumers. It declares nothing shared (the
work queues and exchanges exist because job-api declared them), only queues under its own names
(`ftdw.<worker id>.*`), the one thing its broker user may configure. Given a cluster's URLs (a
comma-separated list, workerlink.failover) it connects to the first node that answers and fails
over to the next one that does; the re-subscription below runs after such a move like after any
reconnect.

Identity: claims and heartbeats are signed with the worker's credential (never sent), reports
carry the claim secret of the attempt they belong to. A worker whose credential was revoked is
told so (its broker user is deleted, its claims are refused): `revoked` is set and the loop stops.
"""

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from contracts.enums import GPUProvider, JobType
from contracts.events import Envelope, EventPayload, JobCancelRequested, Trace, WorkerHeartbeat
from contracts.routing import CLAIM_KEY, BrokerNames
from contracts.rpc import ClaimJob, ClaimRefusal, ClaimReply, JobSpec
from workerlink.cancel import watch_cancel
from workerlink.failover import LINK_ERRORS, broker_urls, connect_failover
from workerlink.identity import WorkerIdentity
from workerlink.offers import Offer, claim_offer, next_offer, take_waiting
from workerlink.reports import ReportOutbox, every
from workerlink.rpc import RpcClient

log = structlog.get_logger(__name__)

State = Literal["idle", "busy", "stopping"]


class BrokerLink:
    def __init__(
        self,
        url: str | Sequence[str],
        names: BrokerNames,
        *,
        identity: WorkerIdentity,
        provider: GPUProvider,
        job_types: Sequence[JobType],
        ssl_context: ssl.SSLContext | None = None,
        reconnect_interval: float = 1.0,
        heartbeat_interval: float = 10.0,
        hardware: str | None = None,
        gpu_memory_gb: int | None = None,
        version: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        shuffle: bool = False,
    ) -> None:
        """`url`: one AMQP URL or a cluster's (a list, or one string separated by commas; raises
        BrokerUrlError, a ValueError, when it is neither), tried in order or, with `shuffle`, in
        an order of this process's own. `gpu_memory_gb`: its largest GPU's memory (None: no
        GPU), advertised in heartbeats and claims; it consumes the work queues of exactly the
        hardware classes that satisfies (contracts.routing)."""
        self._urls = broker_urls(url)
        self._shuffle = shuffle
        self._clock = clock
        self.names = names
        self.identity = identity
        self.worker_id = identity.worker_id
        self.provider = provider
        self.job_types = list(job_types)
        self.source = f"gpu-worker/{self.worker_id}"
        self._ssl_context = ssl_context
        self._reconnect_interval = reconnect_interval
        self._heartbeat_interval = heartbeat_interval
        self._hardware = hardware
        self.gpu_memory_gb = gpu_memory_gb
        self._version = version
        self._connection: AbstractRobustConnection | None = None
        self._work_channel: AbstractChannel | None = None
        self._consumer_tags: dict[str, tuple[AbstractQueue, str]] = {}
        self._offers: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._rpc: RpcClient | None = None
        self._report_exchange: AbstractExchange | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        self._beat_now = asyncio.Event()
        self._state: State = "idle"
        self._job_id: uuid.UUID | None = None
        self.reports: ReportOutbox | None = None
        self.revoked = asyncio.Event()
        self._closing = False
        # Whether offers are wanted (between resume_offers and pause_offers); the lock keeps a
        # re-subscription after a reconnect from racing the loop's own resume and pause.
        self._wanted = False
        self._offers_lock = asyncio.Lock()
        self._resubscribing: asyncio.Task[None] | None = None

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("BrokerLink.connect() has not been awaited")
        return self._connection

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    def _own_queue(self, purpose: str) -> str:
        return f"{self.names.worker_queue_prefix(self.worker_id)}{purpose}.{uuid.uuid4().hex}"

    async def connect(self) -> None:
        self._closing = False
        self._connection = await connect_failover(
            self._urls,
            shuffle=self._shuffle,
            client_properties={"connection_name": self.source},
            reconnect_interval=self._reconnect_interval,
            ssl_context=self._ssl_context,
        )
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        self._connection.close_callbacks.add(self._on_close)
        self._rpc = RpcClient(self._connection, reply_queue=self._own_queue("reply"))
        await self._rpc.start()
        report_channel = await self._connection.channel(publisher_confirms=True)
        self._report_exchange = await report_channel.get_exchange(
            self.names.worker_exchange, ensure=False
        )
        self.reports = ReportOutbox(self._report_exchange, source=self.source)
        self.reports.start()
        beats = every(self._send_heartbeat, self._heartbeat_interval, self._beat_now, LINK_ERRORS)
        self._heartbeats = asyncio.create_task(beats, name="worker-heartbeat")
        log.info(
            "broker.connected",
            worker_id=self.worker_id,
            provider=str(self.provider),
            job_types=[str(t) for t in self.job_types],
            gpu_memory_gb=self.gpu_memory_gb,
        )

    def _on_reconnect(self, *_: object) -> None:
        log.info("broker.reconnected", worker_id=self.worker_id)
        self._beat_now.set()
        self._resubscribing = asyncio.create_task(self._resubscribe(), name="offers-resubscribe")

    async def _resubscribe(self) -> None:
        """After a reconnect: aio-pika restores what was declared through a channel (our reply
        and cancel queues) but not consumers on queues only looked up (the work queues), so
        the offers are subscribed anew. Offers delivered before the drop were requeued by the
        broker; the ones still waiting here are dropped (they cannot be settled any more)."""
        async with self._offers_lock:
            await self._drop_work_channel()
            while not self._offers.empty():
                self._offers.get_nowait()
            if self._wanted:
                await self._subscribe()

    def _on_close(self, *args: object) -> None:
        exc = args[1] if len(args) > 1 else None
        if exc is None or self._closing:
            return
        text = str(exc)
        if "is deleted" in text or "ACCESS_REFUSED" in text:
            # RabbitMQ closes a deleted user's connections: our credential was revoked.
            log.error("worker.revoked", worker_id=self.worker_id, detail=text[:200])
            self.revoked.set()
        else:
            log.warning("broker.connection_lost", worker_id=self.worker_id, error=text[:200])

    async def close(self, *, flush_timeout: float = 10) -> None:
        self._closing = True
        if self._resubscribing is not None:
            self._resubscribing.cancel()
            await asyncio.gather(self._resubscribing, return_exceptions=True)
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            await asyncio.gather(self._heartbeats, return_exceptions=True)
            self._heartbeats = None
        if self.reports is not None:
            await self.reports.close(timeout=flush_timeout)
            self.reports = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
        self._rpc = None
        self._work_channel = None
        self._consumer_tags = {}

    # --- offers ----------------------------------------------------------------------------
    async def _wait_connected(self) -> bool:
        """Until the link is up; False when it never will be (our credential was revoked)."""
        connected = asyncio.ensure_future(self.connection.connected.wait())
        revoked = asyncio.ensure_future(self.revoked.wait())
        try:
            await asyncio.wait({connected, revoked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            connected.cancel()
            revoked.cancel()
        return not self.revoked.is_set()

    async def resume_offers(self) -> None:
        """Take an offer that waits already (offers.take_waiting), else consume the pool's work
        queues of our job types (prefetch 1), again after any reconnect until pause_offers."""
        async with self._offers_lock:
            self._wanted = True
            if not await take_waiting(self._channel, self._queues(), self._offers):
                await self._subscribe()  # nothing waits (or the link is down: it waits for it)

    def _queues(self) -> list[str]:
        pool, gpu_gb = self.identity.pool, self.gpu_memory_gb
        return self.names.offer_queues(pool, self.job_types, self.provider, gpu_gb)

    async def _channel(self) -> AbstractChannel:
        if self._work_channel is None or self._work_channel.is_closed:
            self._consumer_tags = {}
            self._work_channel = await self.connection.channel()
            await self._work_channel.set_qos(prefetch_count=1)  # one offer per queue at most
        return self._work_channel

    async def _subscribe(self, *, retry_interval: float = 0.5) -> None:
        delay = retry_interval
        while True:
            try:
                if not await self._wait_connected():
                    return
                channel = await self._channel()
                for name in self._queues():
                    if name not in self._consumer_tags:
                        queue = await channel.get_queue(name, ensure=False)
                        self._consumer_tags[name] = (queue, await queue.consume(self._offers.put))
                return
            except Exception as exc:
                # Whatever a channel dying under us raises (aio-pika and aiormq do not stick to
                # one exception type): start over on a fresh channel once the link is back.
                log.warning(
                    "offers.subscribe_failed",
                    error=repr(exc)[:200],
                    error_type=type(exc).__name__,
                    retry_in=delay,
                )
                await self._drop_work_channel()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def _drop_work_channel(self) -> None:
        """Forget the work channel: the broker requeues whatever it delivered on it."""
        channel, self._work_channel = self._work_channel, None
        self._consumer_tags = {}
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close()

    async def pause_offers(self) -> None:
        """Stop deliveries, and hand back any offer that raced in (it goes to another worker)."""
        async with self._offers_lock:
            self._wanted = False
            await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        try:
            # Bounded: on a link that is down (or gone for good) a robust channel would wait.
            async with asyncio.timeout(5):
                for queue, tag in self._consumer_tags.values():
                    await queue.cancel(tag)
                self._consumer_tags = {}
                while not self._offers.empty():
                    await self._offers.get_nowait().nack(requeue=True)
        except Exception:
            # The channel went away: the broker has requeued what it delivered on it.
            await self._drop_work_channel()
            while not self._offers.empty():
                self._offers.get_nowait()

    async def next_offer(self, timeout: float | None = None) -> Offer:
        """The next offer while resumed (after one taken where it waited: look again first)."""
        if self._wanted and self._offers.empty() and not self._consumer_tags:
            await self.resume_offers()
        return await next_offer(self._offers, timeout)

    # --- claim -----------------------------------------------------------------------------
    async def request_claim(
        self,
        job_id: uuid.UUID,
        *,
        claim_id: uuid.UUID | None = None,
        timeout: float = 10,
        trace: Trace | None = None,
    ) -> ClaimReply:
        """One signed claim request (RpcTimeout when unanswered; retry with the same claim_id).
        `trace`: the offer's, carried to job-api (and from there into the job spec)."""
        if self._rpc is None:
            raise RuntimeError("BrokerLink.connect() has not been awaited")
        request = ClaimJob(
            job_id=job_id,
            worker_id=self.worker_id,
            claim_id=claim_id or uuid.uuid4(),
            provider=self.provider,
            job_types=self.job_types,
            gpu_memory_gb=self.gpu_memory_gb,
            expires_at=self._clock() + timedelta(seconds=timeout),
            correlation_id=trace.correlation_id if trace else None,
            causation_id=trace.causation_id if trace else None,
        ).signed(self.identity.key)
        reply = await self._rpc.call(
            self.names.claims_exchange, CLAIM_KEY, request, ClaimReply, timeout=timeout
        )
        if reply.refusal is ClaimRefusal.UNAUTHORIZED:
            log.error("worker.unauthorized", worker_id=self.worker_id, detail=reply.message)
            self.revoked.set()
        return reply

    async def claim(self, offer: Offer, *, timeout: float = 10, tries: int = 3) -> ClaimReply:
        """Claim an offer (a lost reply is retried with the same claim id, which job-api grants
        again), then acknowledge the message: granted or refused, it is answered. An expired
        request, or one refused because our credential is not (or no longer) valid, goes back to
        the queue: the job is still pending for someone else."""
        return await claim_offer(
            lambda claim_id: self.request_claim(
                offer.job_id, claim_id=claim_id, timeout=timeout, trace=offer.trace
            ),
            offer,
            tries=tries,
        )

    # --- reports and heartbeats --------------------------------------------------------------
    def report_fields(self, spec: JobSpec) -> dict[str, object]:
        """The fields every report of the attempt `spec` granted must carry."""
        return {
            "job_id": spec.job_id,
            "attempt": spec.attempt,
            "worker_id": self.worker_id,
            "claim_secret": spec.claim_secret,
        }

    async def publish(self, payload: EventPayload, *, timeout: float = 10) -> None:
        """Send one report now and wait until the broker confirmed it (raises on failure). The
        training loop uses `reports.send` instead, which never waits and survives an outage."""
        if self.reports is None:
            raise RuntimeError("BrokerLink.connect() has not been awaited")
        envelope = Envelope.wrap(payload, source=self.source)
        await self.reports.publish(envelope, payload.routing_key(), timeout=timeout)

    def set_state(self, state: State, job_id: uuid.UUID | None = None) -> None:
        """What the next heartbeat says (sent at once): idle, busy with `job_id`, stopping."""
        self._state, self._job_id = state, job_id
        self._beat_now.set()

    def heartbeat(self) -> WorkerHeartbeat:
        return WorkerHeartbeat(
            worker_id=self.worker_id,
            sent_at=self._clock(),
            state=self._state,
            job_id=self._job_id if self._state == "busy" else None,
            provider=self.provider,
            job_types=self.job_types,
            hardware=self._hardware,
            gpu_memory_gb=self.gpu_memory_gb,
            version=self._version,
        ).signed(self.identity.key)

    async def _send_heartbeat(self) -> None:
        """A heartbeat is worth sending only now: not queued through an outage like reports."""
        if self.reports is not None:
            beat = self.heartbeat()
            envelope = Envelope.wrap(beat, source=self.source)
            key = beat.routing_key()
            await self.reports.publish(envelope, key, timeout=5, persistent=False, mandatory=False)

    # --- cancel ----------------------------------------------------------------------------
    async def watch_cancel(
        self,
        job_id: uuid.UUID,
        attempt: int,
        callback: Callable[[JobCancelRequested], None],
        *,
        claim_secret: str | None = None,
    ) -> AbstractChannel:
        """Call `callback` when job-api asks the holder of `attempt` to stop. A notice addressed
        to one claim secret (`claim_secret_sha256`, for a sender that presented a wrong one) is
        ignored unless it is ours. Close the returned channel when the attempt ends."""
        return await watch_cancel(
            self.connection,
            self.names,
            self._own_queue("cancel"),
            job_id,
            attempt,
            callback,
            claim_secret=claim_secret,
        )


__all__ = ["BrokerLink", "Offer"]
