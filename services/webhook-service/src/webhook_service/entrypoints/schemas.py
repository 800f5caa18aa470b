"""HTTP request and response bodies."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from webhook_service.domain.deliveries import Attempt, Delivery, DeliveryStatus
from webhook_service.domain.webhooks import MAX_URL_LENGTH, EventType, Webhook

Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH)]
Description = Annotated[str, StringConstraints(max_length=500)]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=len(EventType))]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url = Field(
        description="Where events are POSTed: https, a public host (no credentials, no fragment)."
    )
    event_types: EventTypes = Field(description="The events this webhook is told of.")
    description: Description = ""


class WebhookUpdate(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = Field(
        default=None,
        description="A disabled webhook gets no new events; its pending deliveries wait.",
    )


class WebhookResponse(BaseModel):
    id: UUID
    url: str
    event_types: list[EventType]
    description: str
    enabled: bool
    user_id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, webhook: Webhook) -> "WebhookResponse":
        return cls(
            id=webhook.id,
            url=webhook.url,
            event_types=list(webhook.event_types),
            description=webhook.description,
            enabled=webhook.enabled,
            user_id=webhook.user_id,
            created_at=webhook.created_at,
            updated_at=webhook.updated_at,
        )


class WebhookWithSecret(WebhookResponse):
    secret: str = Field(
        description=(
            "The signing secret (`whsec_...`), shown this once: keep it to verify deliveries "
            "(Standard Webhooks: `webhook-signature` is `v1,` and the base64 HMAC-SHA256 of "
            "`{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64-decoded part after "
            "`whsec_`)."
        )
    )

    @classmethod
    def with_secret(cls, webhook: Webhook, secret: str) -> "WebhookWithSecret":
        return cls(**WebhookResponse.of(webhook).model_dump(), secret=secret)


class AttemptResponse(BaseModel):
    attempt: int = Field(description="1 for the first try of the delivery, then 2...")
    status_code: int | None = Field(description="The receiver's HTTP status; null if none came.")
    error: str | None = Field(description="Why it failed: a status, a timeout, a refusal.")
    duration_ms: int
    attempted_at: datetime
    next_retry_at: datetime | None = Field(description="When it is tried again, if it is.")

    @classmethod
    def of(cls, attempt: Attempt) -> "AttemptResponse":
        return cls(
            attempt=attempt.number,
            status_code=attempt.status_code,
            error=attempt.error,
            duration_ms=attempt.duration_ms,
            attempted_at=attempt.attempted_at,
            next_retry_at=attempt.next_retry_at,
        )


class DeliveryResponse(BaseModel):
    id: UUID = Field(description="Sent as `webhook-id` (`msg_<id hex>`), the same on retries.")
    webhook_id: UUID
    event_id: UUID
    event_type: str = Field(description="A subscribed event type, or `ping` (a test).")
    status: DeliveryStatus
    attempts: int
    status_code: int | None = Field(description="The last attempt's HTTP status.")
    error: str | None = Field(description="The last attempt's error.")
    next_retry_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[AttemptResponse] = Field(description="Every attempt, first to last.")

    @classmethod
    def of(cls, delivery: Delivery, attempts: list[Attempt]) -> "DeliveryResponse":
        return cls(
            id=delivery.id,
            webhook_id=delivery.webhook_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            status=delivery.status,
            attempts=delivery.attempts,
            status_code=delivery.last_status_code,
            error=delivery.last_error,
            next_retry_at=(
                delivery.next_attempt_at if delivery.status is DeliveryStatus.PENDING else None
            ),
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
            log=[AttemptResponse.of(a) for a in attempts],
        )


class DeletedResponse(BaseModel):
    id: UUID
    deleted: bool = Field(description="Always true: the webhook, its deliveries and log are gone.")
