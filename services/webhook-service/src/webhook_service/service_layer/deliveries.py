"""Deliveries from events, and the sender that sends the due ones.

The consumer applies a batch of job-api's and the registry's events in one transaction with their
inbox rows (`deliveries_for`): each event a user's webhooks subscribe to becomes one delivery row
per webhook, due at once (the transactional outbox of deliveries). The sender (`Sender.run`, a
supervised background task) takes due rows, sends them signed, and records each attempt: the row
is delivered, failed for good, or due again after the back-off. Only the event's user's webhooks
get it.
"""

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import orjson
import structlog

from contracts.enums import JobStatus
from contracts.events import Envelope, EventPayload, JobStatusChanged, ModelDeployed
from messaging.received import Received
from servicekit.domain import DomainError
from servicekit.handlers import EventHandlers
from servicekit.uow import Units
from webhook_service.domain.deliveries import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Outcome,
    RetrySchedule,
)
from webhook_service.domain.errors import UnreadableSecret
from webhook_service.domain.webhooks import PING, EventType, UrlPolicy, Webhook, check_url
from webhook_service.service_layer.unit_of_work import UnitOfWork
from webhook_service.service_layer.webhooks import Cipher, get_webhook

log = structlog.get_logger(__name__)

# job.status_changed into a terminal status: the webhook event it is.
JOB_EVENTS = {
    JobStatus.COMPLETED: EventType.JOB_SUCCEEDED,
    JobStatus.FAILED: EventType.JOB_FAILED,
    JobStatus.CANCELLED: EventType.JOB_CANCELLED,
}

_RANDOM = random.SystemRandom()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def body_of(event_id: UUID, event_type: str, occurred_at: datetime, data: dict[str, Any]) -> bytes:
    """The JSON a receiver gets: Standard Webhooks' suggested `type`, `timestamp` and `data`,
    and the event's `id` (the same for every webhook the event goes to)."""
    return orjson.dumps(
        {"id": str(event_id), "type": event_type, "timestamp": _iso(occurred_at), "data": data}
    )


@dataclass
class Context:
    """What the event handlers share: the batch's unit of work, the event's envelope, and the
    number of deliveries they wrote."""

    uow: UnitOfWork
    now: datetime
    envelope: Envelope | None = None
    created: int = 0


handlers: EventHandlers[Context, EventPayload] = EventHandlers()


async def _enqueue(
    context: Context, user_id: str, event_type: EventType, data: dict[str, Any]
) -> None:
    envelope = context.envelope
    assert envelope is not None
    webhooks = await context.uow.webhooks.subscribed(user_id, str(event_type))
    body = body_of(envelope.id, str(event_type), envelope.time, data)
    rows = [
        Delivery(
            id=uuid.uuid4(),
            webhook_id=webhook.id,
            user_id=user_id,
            event_id=envelope.id,
            event_type=str(event_type),
            body=body,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=context.now,
            created_at=context.now,
        )
        for webhook in webhooks
    ]
    context.created += await context.uow.deliveries.add(rows)


@handlers.on(JobStatusChanged)
async def job_status_changed(context: Context, event: JobStatusChanged) -> None:
    event_type = JOB_EVENTS.get(event.to_status)
    if event_type is None:
        return
    data: dict[str, Any] = {
        "job_id": str(event.job_id),
        "status": str(event.to_status),
        "attempt": event.attempt,
    }
    if event.to_status is JobStatus.FAILED:
        data["failure_class"] = str(event.failure_class) if event.failure_class else None
        data["error"] = event.error
    await _enqueue(context, event.user_id, event_type, data)


@handlers.on(ModelDeployed)
async def model_deployed(context: Context, event: ModelDeployed) -> None:
    if not event.deployed:
        return  # an undeploy: no webhook event subscribes to it
    data = {
        "model_id": str(event.model_id),
        "job_id": str(event.job_id) if event.job_id else None,
        "repo_id": event.repo_id,
        "revision": event.revision,
        "job_type": str(event.job_type),
        "deployed_at": _iso(event.deployed_at),
    }
    await _enqueue(context, event.user_id, EventType.MODEL_DEPLOYED, data)


async def deliveries_for(uow: UnitOfWork, batch: Sequence[Received], *, now: datetime) -> int:
    """Write the deliveries of a batch of events; the number written."""
    context = Context(uow=uow, now=now)
    for received in batch:
        # The handlers need the envelope too (the event's id and time): set per event, and
        # applied within its trace as `EventHandlers.apply_each` does.
        context.envelope = received.envelope
        with received.handling():
            if not await handlers.dispatch(context, received.payload):
                log.warning("webhooks.unexpected_event", event_type=received.envelope.type)
    return context.created


def ping(webhook: Webhook, *, now: datetime) -> Delivery:
    """The delivery of POST /api/webhooks/{id}/test: tried once, at once, whatever the webhook
    subscribes to."""
    event_id = uuid.uuid4()
    data = {"webhook_id": str(webhook.id), "message": "A test event from Finetune Dispatcher."}
    return Delivery(
        id=uuid.uuid4(),
        webhook_id=webhook.id,
        user_id=webhook.user_id,
        event_id=event_id,
        event_type=PING,
        body=body_of(event_id, PING, now, data),
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=None,
        created_at=now,
        retries=False,
    )


class Transport(Protocol):
    """Sends one attempt (adapters.sender.HttpSender)."""

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome: ...


Sign = Callable[[str, str, bytes, datetime], dict[str, str]]
Observe = Callable[[Delivery, Attempt], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Sender:
    """Sends due deliveries: `batch` at a time, `concurrency` at once. It looks for due rows
    every `poll_seconds`, and at once when poked (a batch of events committed). A delivery taken
    is leased for `lease` (longer than an attempt can take), so if this process dies mid-attempt
    it is due again afterwards: receivers may get a delivery twice, never lose one (they dedupe
    on `webhook-id`)."""

    units: Units[UnitOfWork]
    transport: Transport
    sign: Sign
    cipher: Cipher
    policy: UrlPolicy
    schedule: RetrySchedule
    lease: timedelta
    batch: int = 50
    concurrency: int = 10
    poll_seconds: float = 1.0
    pool: str = "sender"
    observe: Observe = lambda _delivery, _attempt: None
    clock: Callable[[], datetime] = _utcnow
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            sent = await self.send_due()
            if sent >= self.batch:
                continue  # more may be due
            try:
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def send_due(self) -> int:
        """One round: take the due deliveries and try each once; how many were tried."""
        async with self.units.writing(self.pool) as uow:
            claimed = await uow.deliveries.claim_due(
                self.clock(), limit=self.batch, lease=self.lease
            )
        if not claimed:
            return 0
        slots = asyncio.Semaphore(self.concurrency)

        async def one(delivery: Delivery, url: str, secret_ciphertext: str) -> None:
            async with slots:
                await self.attempt(delivery, url, secret_ciphertext)

        async with asyncio.TaskGroup() as group:
            for c in claimed:
                group.create_task(one(c.delivery, c.url, c.secret_ciphertext))
        return len(claimed)

    async def _outcome(self, delivery: Delivery, url: str, secret_ciphertext: str) -> Outcome:
        try:
            check_url(url, self.policy)
        except DomainError as exc:
            return Outcome(None, f"refused: {exc}", retryable=False, duration_ms=0)
        try:
            secret = self.cipher.decrypt(secret_ciphertext)
        except UnreadableSecret:
            # The operator can fix the key list; until then, the back-off.
            return Outcome(
                None,
                "the webhook's signing secret cannot be decrypted with the configured keys",
                retryable=True,
                duration_ms=0,
            )
        headers = self.sign(secret, delivery.message_id, delivery.body, self.clock())
        return await self.transport.post(url, delivery.body, headers)

    async def attempt(self, delivery: Delivery, url: str, secret_ciphertext: str) -> Attempt:
        """Try `delivery` once and record the attempt (the delivery is updated in place)."""
        outcome = await self._outcome(delivery, url, secret_ciphertext)
        attempt = delivery.record(
            outcome, now=self.clock(), schedule=self.schedule, jitter=_RANDOM.uniform(-1, 1)
        )
        async with self.units.writing(self.pool) as uow:
            recorded = await uow.deliveries.record(delivery, attempt)
        log.info(
            "webhook.delivery_attempt",
            delivery_id=str(delivery.id),
            webhook_id=str(delivery.webhook_id),
            event_type=delivery.event_type,
            attempt=attempt.number,
            status_code=attempt.status_code,
            error=attempt.error,
            duration_ms=attempt.duration_ms,
            delivery_status=str(delivery.status),
            next_retry_at=attempt.next_retry_at.isoformat() if attempt.next_retry_at else None,
            recorded=recorded,
        )
        if recorded:
            self.observe(delivery, attempt)
        return attempt


async def send_test(
    units: Units[UnitOfWork], sender: Sender, webhook_id: UUID, *, user_id: str | None
) -> tuple[Delivery, Attempt]:
    """Write a ping for the webhook and send it once, now (the request waits for the answer).
    No transaction is open while the receiver is called."""
    async with units.writing() as uow:
        webhook = await get_webhook(uow, webhook_id, user_id=user_id)
        delivery = ping(webhook, now=sender.clock())
        await uow.deliveries.add([delivery])
    attempt = await sender.attempt(delivery, webhook.url, webhook.secret_ciphertext)
    return delivery, attempt


async def delivery_log(
    uow: UnitOfWork,
    webhook_id: UUID,
    *,
    user_id: str | None,
    limit: int,
    after: tuple[datetime, UUID] | None,
) -> tuple[list[tuple[Delivery, list[Attempt]]], tuple[datetime, UUID] | None]:
    """A page of the webhook's deliveries, newest first, each with its attempts."""
    await get_webhook(uow, webhook_id, user_id=user_id)
    rows = await uow.deliveries.of_webhook(webhook_id, limit=limit + 1, after=after)
    page = rows[:limit]
    attempts = await uow.deliveries.attempts_of([d.id for d in page])
    nxt = (page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return [(d, attempts[d.id]) for d in page], nxt
