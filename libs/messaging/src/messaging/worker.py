"""The worker's side of the dispatch protocol, over the broker only (a worker holds broker
credentials and nothing else): take a job message off the work queues it serves, claim it by
request/reply, report progress (the heartbeat), failure or the pushed model, and hear
cancellation.

The message is acknowledged once the claim is answered, granted or not (DESIGN.md, dispatch 4).
Reports go to the worker exchange, which only job-api's queue binds: job-api fences them (attempt
and claim secret) and publishes what is public. Every report carries the claim secret the grant
gave (`JobSpec.claim_secret`); build reports with `WorkerClient.report_fields(spec)`.
"""

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from contracts.enums import GPUProvider, JobType
from contracts.events import Envelope, EventPayload, JobCancelRequested
from contracts.routing import JOB_API, cancel_binding
from contracts.rpc import ClaimJob, ClaimRefusal, ClaimReply, JobSpec
from messaging.broker import Broker
from messaging.rpc import RpcClient


@dataclass(frozen=True)
class Offer:
    """A job message taken off a work queue, not yet acknowledged."""

    job_id: uuid.UUID
    job_type: JobType
    message: AbstractIncomingMessage


class WorkerClient:
    def __init__(
        self,
        broker: Broker,
        *,
        worker_id: str,
        provider: GPUProvider,
        job_types: Sequence[JobType],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.broker = broker
        self._clock = clock
        self.worker_id = worker_id
        self.provider = provider
        self.job_types = list(job_types)
        self.source = f"gpu-worker/{worker_id}"
        self._rpc = RpcClient(broker)
        self._work_channel: AbstractChannel | None = None
        self._offers: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._queues: list[AbstractQueue] = []

    async def start(self) -> None:
        await self._rpc.start()
        # prefetch 1: a worker holds at most one offer at a time.
        self._work_channel = await self.broker.channel(prefetch=1)
        for job_type in self.job_types:
            queue = await self._work_channel.get_queue(
                self.broker.names.work_queue(job_type, self.provider)
            )
            await queue.consume(self._offers.put)
            self._queues.append(queue)

    async def close(self) -> None:
        if self._work_channel is not None and not self._work_channel.is_closed:
            await self._work_channel.close()
        await self._rpc.close()

    async def next_offer(self, timeout: float | None = None) -> Offer:
        message = await asyncio.wait_for(self._offers.get(), timeout)
        envelope = Envelope.model_validate_json(message.body)
        return Offer(
            job_id=uuid.UUID(str(envelope.data["job_id"])),
            job_type=JobType(envelope.data["job_type"]),
            message=message,
        )

    async def claim(
        self, job_id: uuid.UUID, *, claim_id: uuid.UUID | None = None, timeout: float = 10
    ) -> ClaimReply:
        request = ClaimJob(
            job_id=job_id,
            worker_id=self.worker_id,
            claim_id=claim_id or uuid.uuid4(),
            provider=self.provider,
            job_types=self.job_types,
            expires_at=self._clock() + timedelta(seconds=timeout),
        )
        names = self.broker.names
        return await self._rpc.call(
            names.rpc_queue(JOB_API),
            request,
            ClaimReply,
            timeout=timeout,
            exchange=names.rpc_exchange(JOB_API),
        )

    async def take(self, offer: Offer, *, timeout: float = 10) -> ClaimReply:
        """Claim an offer, retrying a lost reply with the same claim id, then acknowledge it."""
        claim_id = uuid.uuid4()
        for attempt in range(3):
            try:
                reply = await self.claim(offer.job_id, claim_id=claim_id, timeout=timeout)
                break
            except TimeoutError:
                if attempt == 2:
                    raise
        if reply.refusal is ClaimRefusal.EXPIRED:
            # Our request sat too long (or our clock is behind): the job is still pending, so the
            # offer goes back to the queue rather than being dropped.
            await offer.message.nack(requeue=True)
        else:
            await offer.message.ack()
        return reply

    def report_fields(self, spec: JobSpec) -> dict[str, object]:
        """The fields every report of the attempt `spec` granted must carry."""
        return {
            "job_id": spec.job_id,
            "attempt": spec.attempt,
            "worker_id": self.worker_id,
            "claim_secret": spec.claim_secret,
        }

    async def publish(self, payload: EventPayload) -> None:
        """Send a report (job.progress, job.failed, model.pushed) to job-api."""
        await self.broker.publish(
            Envelope.wrap(payload, source=self.source),
            payload.routing_key(),
            exchange=self.broker.names.worker_exchange,
        )

    async def on_cancel(
        self, job_id: uuid.UUID, attempt: int, callback: Callable[[JobCancelRequested], None]
    ) -> AbstractChannel:
        """Call `callback` when job-api asks the holder of `attempt` to stop. Close the returned
        channel when the attempt ends."""
        channel = await self.broker.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(self.broker.names.events_exchange, routing_key=cancel_binding(str(job_id)))

        async def handle(message: AbstractIncomingMessage) -> None:
            payload = Envelope.model_validate_json(message.body).payload()
            if isinstance(payload, JobCancelRequested) and payload.attempt in (None, attempt):
                callback(payload)

        await queue.consume(handle, no_ack=True)
        return channel
