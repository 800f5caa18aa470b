"""Commands on webhooks (create, update, delete, rotate the secret) and reads. The signing secret
is returned by create and rotate only, and stored encrypted."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

import structlog

from webhook_service.domain.errors import TooManyWebhooks, WebhookNotFound
from webhook_service.domain.webhooks import (
    EventType,
    UrlPolicy,
    Webhook,
    check_url,
    event_types_of,
    new_secret,
)
from webhook_service.service_layer.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


class Cipher(Protocol):
    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, ciphertext: str) -> str: ...


@dataclass(frozen=True)
class WithSecret:
    """A webhook and its signing secret in plain text: what create and rotate answer, once."""

    webhook: Webhook
    secret: str


@dataclass(frozen=True)
class Changes:
    url: str | None = None
    event_types: Sequence[str] | None = None
    description: str | None = None
    enabled: bool | None = None


async def create_webhook(
    uow: UnitOfWork,
    *,
    user_id: str,
    url: str,
    event_types: Sequence[str],
    description: str,
    policy: UrlPolicy,
    cipher: Cipher,
    max_per_user: int,
    now: datetime,
) -> WithSecret:
    check_url(url, policy)
    await uow.webhooks.lock_user(user_id)
    if await uow.webhooks.count(user_id) >= max_per_user:
        raise TooManyWebhooks(max_per_user)
    secret = new_secret()
    webhook = Webhook(
        id=uuid.uuid4(),
        user_id=user_id,
        url=url,
        event_types=event_types_of(event_types),
        description=description,
        enabled=True,
        created_at=now,
        updated_at=now,
        secret_ciphertext=cipher.encrypt(secret),
    )
    await uow.webhooks.add(webhook)
    log.info(
        "webhook.created",
        webhook_id=str(webhook.id),
        user_id=user_id,
        event_types=[str(t) for t in webhook.event_types],
    )
    return WithSecret(webhook, secret)


async def get_webhook(
    uow: UnitOfWork, webhook_id: UUID, *, user_id: str | None, for_update: bool = False
) -> Webhook:
    webhook = await uow.webhooks.get(webhook_id, user_id=user_id, for_update=for_update)
    if webhook is None:
        raise WebhookNotFound(webhook_id)
    return webhook


async def update_webhook(
    uow: UnitOfWork,
    webhook_id: UUID,
    changes: Changes,
    *,
    user_id: str | None,
    policy: UrlPolicy,
    now: datetime,
) -> Webhook:
    webhook = await get_webhook(uow, webhook_id, user_id=user_id, for_update=True)
    if changes.url is not None:
        webhook.url = check_url(changes.url, policy)
    if changes.event_types is not None:
        webhook.event_types = event_types_of(changes.event_types)
    if changes.description is not None:
        webhook.description = changes.description
    if changes.enabled is not None:
        webhook.enabled = changes.enabled
    webhook.updated_at = now
    await uow.webhooks.save(webhook)
    log.info("webhook.updated", webhook_id=str(webhook.id), enabled=webhook.enabled)
    return webhook


async def rotate_secret(
    uow: UnitOfWork, webhook_id: UUID, *, user_id: str | None, cipher: Cipher, now: datetime
) -> WithSecret:
    """A new secret signs every attempt from now on, pending retries included."""
    webhook = await get_webhook(uow, webhook_id, user_id=user_id, for_update=True)
    secret = new_secret()
    webhook.secret_ciphertext = cipher.encrypt(secret)
    webhook.updated_at = now
    await uow.webhooks.save(webhook)
    log.info("webhook.secret_rotated", webhook_id=str(webhook.id))
    return WithSecret(webhook, secret)


async def delete_webhook(uow: UnitOfWork, webhook_id: UUID, *, user_id: str | None) -> Webhook:
    """The webhook goes, with its pending deliveries and its delivery log."""
    webhook = await get_webhook(uow, webhook_id, user_id=user_id, for_update=True)
    await uow.webhooks.delete(webhook.id)
    log.info("webhook.deleted", webhook_id=str(webhook.id))
    return webhook


async def list_webhooks(
    uow: UnitOfWork, *, user_id: str | None, limit: int, after: tuple[datetime, UUID] | None
) -> tuple[list[Webhook], tuple[datetime, UUID] | None]:
    rows = await uow.webhooks.search(user_id, limit=limit + 1, after=after)
    page = rows[:limit]
    nxt = (page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, nxt


__all__ = ["Changes", "Cipher", "EventType", "WithSecret"]
