"""The worker's one connection to the broker (it dials out; it needs no inbound port).

A robust aio-pika connection: after a broker restart or a dropped link it reconnects and restores
the channels, the reply and cancel queues and their consumers. It declares nothing shared (the
work queues and exchanges exist because job-api declared them, deploy/rabbitmq/README.md), so the
broker's `worker` user needs no configure permission beyond its own exclusive queues.
"""

import asyncio
import contextlib
import hashlib
import ssl
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from contracts.enums import GPUProvider, JobType
from contracts.events import Envelope, JobCancelRequested
from contracts.routing import JOB_API, BrokerNames, cancel_binding
from contracts.rpc import ClaimJob, ClaimRefusal, ClaimReply
from gpu_worker.runtime.reports import ReportOutbox
from gpu_worker.runtime.rpc import RpcClient

log = structlog.get_logger(__name__)


def tls_context(
    *, ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> ssl.SSLContext:
    """Verifies the broker's certificate (system trust store, plus `ca_file`); presents a client
    certificate when one is given."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return context


def certificate_problem(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a connection error (aiormq wraps it), if any:
    an unknown CA or a host name the certificate does not name. Retrying cannot fix it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@dataclass(frozen=True)
class Offer:
    """A job message taken off a work queue, not yet acknowledged."""

    job_id: uuid.UUID
    job_type: JobType
    message: AbstractIncomingMessage


class BrokerLink:
    def __init__(
        self,
        url: str,
        names: BrokerNames,
        *,
        worker_id: str,
        provider: GPUProvider,
        job_types: Sequence[JobType],
        ssl_context: ssl.SSLContext | None = None,
        reconnect_interval: float = 1.0,
    ) -> None:
        self._url = url
        self.names = names
        self.worker_id = worker_id
        self.provider = provider
        self.job_types = list(job_types)
        self.source = f"gpu-worker/{worker_id}"
        self._ssl_context = ssl_context
        self._reconnect_interval = reconnect_interval
        self._connection: AbstractRobustConnection | None = None
        self._work_channel: AbstractChannel | None = None
        self._work_queues: list[AbstractQueue] = []
        self._consumer_tags: dict[str, str] = {}
        self._offers: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._rpc: RpcClient | None = None
        self.reports: ReportOutbox | None = None
        self._closing = False

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("BrokerLink.connect() has not been awaited")
        return self._connection

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def connect(self) -> None:
        self._closing = False
        self._connection = await aio_pika.connect_robust(
            self._url,
            client_properties={"connection_name": self.source},
            reconnect_interval=self._reconnect_interval,
            ssl_context=self._ssl_context,
        )
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        self._connection.close_callbacks.add(self._on_close)
        self._rpc = RpcClient(self._connection)
        await self._rpc.start()
        report_channel = await self._connection.channel(publisher_confirms=True)
        exchange: AbstractExchange = await report_channel.get_exchange(
            self.names.worker_exchange, ensure=False
        )
        self.reports = ReportOutbox(exchange, source=self.source)
        self.reports.start()
        # prefetch 1: a worker holds at most one offer per queue; it pauses consuming altogether
        # while it runs a job (pause_offers), so it never sits on work another worker could take.
        self._work_channel = await self._connection.channel()
        await self._work_channel.set_qos(prefetch_count=1)
        for job_type in self.job_types:
            name = self.names.work_queue(job_type, self.provider)
            self._work_queues.append(await self._work_channel.get_queue(name))
        log.info(
            "broker.connected",
            worker_id=self.worker_id,
            provider=str(self.provider),
            job_types=[str(t) for t in self.job_types],
        )

    def _on_reconnect(self, *_: object) -> None:
        log.info("broker.reconnected", worker_id=self.worker_id)

    def _on_close(self, *args: object) -> None:
        exc = args[1] if len(args) > 1 else None
        if exc is not None and not self._closing:
            log.warning("broker.connection_lost", worker_id=self.worker_id, error=str(exc)[:200])

    async def close(self, *, flush_timeout: float = 10) -> None:
        self._closing = True
        if self.reports is not None:
            await self.reports.close(timeout=flush_timeout)
            self.reports = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
        self._rpc = None
        self._work_channel = None
        self._work_queues = []
        self._consumer_tags = {}

    # --- offers ----------------------------------------------------------------------------
    async def resume_offers(self) -> None:
        for queue in self._work_queues:
            if queue.name not in self._consumer_tags:
                self._consumer_tags[queue.name] = await queue.consume(self._offers.put)

    async def pause_offers(self) -> None:
        """Stop deliveries, and hand back any offer that raced in (it goes to another worker)."""
        for queue in self._work_queues:
            tag = self._consumer_tags.pop(queue.name, None)
            if tag is not None:
                with contextlib.suppress(Exception):
                    await queue.cancel(tag)
        while not self._offers.empty():
            message = self._offers.get_nowait()
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)

    async def next_offer(self, timeout: float | None = None) -> Offer:
        while True:
            message = await asyncio.wait_for(self._offers.get(), timeout)
            try:
                envelope = Envelope.model_validate_json(message.body)
                return Offer(
                    job_id=uuid.UUID(str(envelope.data["job_id"])),
                    job_type=JobType(envelope.data["job_type"]),
                    message=message,
                )
            except (ValueError, KeyError) as exc:
                # Not ours to fix: reject it so the queue dead-letters it.
                log.error("offer.unreadable", error=str(exc)[:300])
                with contextlib.suppress(Exception):
                    await message.reject(requeue=False)

    # --- claim -----------------------------------------------------------------------------
    async def claim(self, offer: Offer, *, timeout: float = 10, tries: int = 3) -> ClaimReply:
        """Claim an offer (a lost reply is retried with the same claim id, which job-api grants
        again), then acknowledge the message: granted or refused, it is answered. An expired
        request goes back to the queue: the job is still pending."""
        if self._rpc is None:
            raise RuntimeError("BrokerLink.connect() has not been awaited")
        claim_id = uuid.uuid4()
        reply: ClaimReply | None = None
        for attempt in range(tries):
            request = ClaimJob(
                job_id=offer.job_id,
                worker_id=self.worker_id,
                claim_id=claim_id,
                provider=self.provider,
                job_types=self.job_types,
                expires_at=datetime.now(UTC) + timedelta(seconds=timeout),
            )
            try:
                reply = await self._rpc.call(
                    self.names.rpc_exchange(JOB_API),
                    self.names.rpc_queue(JOB_API),
                    request,
                    ClaimReply,
                    timeout=timeout,
                )
                break
            except TimeoutError:
                log.warning("claim.no_reply", job_id=str(offer.job_id), attempt=attempt + 1)
                if attempt == tries - 1:
                    raise
        assert reply is not None
        with contextlib.suppress(Exception):
            # After a reconnect the broker has requeued the message already; nothing to settle.
            if reply.refusal is ClaimRefusal.EXPIRED:
                await offer.message.nack(requeue=True)
            else:
                await offer.message.ack()
        return reply

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
        ours = hashlib.sha256(claim_secret.encode()).hexdigest() if claim_secret else None
        channel = await self.connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(self.names.events_exchange, routing_key=cancel_binding(str(job_id)))

        async def handle(message: AbstractIncomingMessage) -> None:
            try:
                payload = Envelope.model_validate_json(message.body).payload()
            except (ValueError, KeyError):
                return
            if not isinstance(payload, JobCancelRequested) or payload.attempt not in (
                None,
                attempt,
            ):
                return
            if payload.claim_secret_sha256 is not None and payload.claim_secret_sha256 != ours:
                return
            callback(payload)

        await queue.consume(handle, no_ack=True)
        return channel
