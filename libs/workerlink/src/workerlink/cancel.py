"""Cancel notices: job-api asks the holder of an attempt to stop (job.cancel_requested, routed
by job id); the worker listens on a queue of its own while the attempt runs."""

import hashlib
import uuid
from collections.abc import Callable

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from contracts.events import Envelope, JobCancelRequested, payload_of
from contracts.routing import BrokerNames, cancel_binding


async def watch_cancel(
    connection: AbstractRobustConnection,
    names: BrokerNames,
    queue_name: str,
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
    channel = await connection.channel()
    queue = await channel.declare_queue(queue_name, exclusive=True, auto_delete=True)
    await queue.bind(names.events_exchange, routing_key=cancel_binding(str(job_id)))

    async def handle(message: AbstractIncomingMessage) -> None:
        try:
            payload = payload_of(Envelope.model_validate_json(message.body))
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
