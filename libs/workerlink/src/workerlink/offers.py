"""An offer: a job message (job.created, job.requeued) taken off a work queue, not yet
acknowledged, with the trace its claim and the attempt continue."""

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from contracts.enums import JobType
from contracts.events import Envelope, Trace
from contracts.rpc import ClaimRefusal, ClaimReply

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Offer:
    job_id: uuid.UUID
    job_type: JobType
    message: AbstractIncomingMessage
    # The offer's chain of work, caused by the offer: the claim carries it to job-api.
    trace: Trace | None = None


def read_offer(message: AbstractIncomingMessage) -> Offer:
    """Raises ValueError or KeyError for a message that is not an offer."""
    envelope = Envelope.model_validate_json(message.body)
    return Offer(
        job_id=uuid.UUID(str(envelope.data["job_id"])),
        job_type=JobType(envelope.data["job_type"]),
        message=message,
        trace=envelope.caused_trace(),
    )


async def next_offer(
    offers: "asyncio.Queue[AbstractIncomingMessage]", timeout: float | None
) -> Offer:
    """The next readable offer off `offers`; a message that is not one is rejected (not ours to
    fix: the queue dead-letters it)."""
    while True:
        message = await asyncio.wait_for(offers.get(), timeout)
        try:
            return read_offer(message)
        except (ValueError, KeyError) as exc:
            log.error("offer.unreadable", error=str(exc)[:300])
            with contextlib.suppress(Exception):
                await message.reject(requeue=False)


async def take_waiting(
    channel: Callable[[], Awaitable[AbstractChannel]],
    queues: Sequence[str],
    offers: "asyncio.Queue[AbstractIncomingMessage]",
) -> bool:
    """Put into `offers` one offer that waits already, fetched (basic.get) on `channel()` from
    one queue after another, starting at a random one so that no job type waits behind another;
    False when none waits or the link fails under the call. Consuming every queue at once would
    deliver one offer per queue that has one, and each offer handed back counts as a delivery
    against its quorum queue's limit: after a few such races an offer nobody failed would be
    dead-lettered and its job left waiting for a redispatch."""
    start = random.randrange(len(queues)) if queues else 0  # noqa: S311 - fairness, not secrecy
    with contextlib.suppress(Exception):
        opened = await channel()
        for n in range(len(queues)):
            queue = await opened.get_queue(queues[(start + n) % len(queues)], ensure=False)
            message = await queue.get(no_ack=False, fail=False)
            if message is not None:
                offers.put_nowait(message)
                return True
    return False


async def claim_offer(
    request: Callable[[uuid.UUID], Awaitable[ClaimReply]], offer: Offer, *, tries: int
) -> ClaimReply:
    """Claim `offer` with `request(claim_id)` (a lost reply is retried with the same claim id,
    which job-api grants again), then acknowledge the message: granted or refused, it is
    answered. An expired request, or one refused because our credential is not (or no longer)
    valid, goes back to the queue: the job is still pending for someone else."""
    claim_id = uuid.uuid4()
    reply: ClaimReply | None = None
    for attempt in range(tries):
        try:
            reply = await request(claim_id)
            break
        except TimeoutError:
            log.warning("claim.no_reply", job_id=str(offer.job_id), attempt=attempt + 1)
            if attempt == tries - 1:
                raise
    assert reply is not None
    with contextlib.suppress(Exception):
        # After a reconnect the broker has requeued the message already; nothing to settle.
        if reply.refusal in (ClaimRefusal.EXPIRED, ClaimRefusal.UNAUTHORIZED):
            await offer.message.nack(requeue=True)
        else:
            await offer.message.ack()
    return reply
