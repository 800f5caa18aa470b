"""All SQL of webhook-service, built from the caller's connection (the entry point owns the
transaction)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from webhook_service.adapters.tables import attempts, deliveries, webhooks
from webhook_service.domain.deliveries import Attempt, Delivery, DeliveryStatus
from webhook_service.domain.webhooks import EventType, Webhook


def webhook_from_row(row: sa.Row[Any]) -> Webhook:
    m = row._mapping
    return Webhook(
        id=m["id"],
        user_id=m["user_id"],
        url=m["url"],
        event_types=tuple(EventType(t) for t in m["event_types"]),
        description=m["description"],
        enabled=m["enabled"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        secret_ciphertext=m["secret_ciphertext"],
    )


def delivery_from_row(row: sa.Row[Any]) -> Delivery:
    m = row._mapping
    return Delivery(
        id=m["id"],
        webhook_id=m["webhook_id"],
        user_id=m["user_id"],
        event_id=m["event_id"],
        event_type=m["event_type"],
        body=bytes(m["body"]),
        status=DeliveryStatus(m["status"]),
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        created_at=m["created_at"],
        delivered_at=m["delivered_at"],
        last_status_code=m["last_status_code"],
        last_error=m["last_error"],
        retries=m["retries"],
    )


def _webhook_values(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "user_id": webhook.user_id,
        "url": webhook.url,
        "event_types": [str(t) for t in webhook.event_types],
        "description": webhook.description,
        "enabled": webhook.enabled,
        "secret_ciphertext": webhook.secret_ciphertext,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
    }


class WebhookRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, webhook: Webhook) -> None:
        await self._conn.execute(sa.insert(webhooks).values(_webhook_values(webhook)))

    async def save(self, webhook: Webhook) -> None:
        values = _webhook_values(webhook)
        del values["id"], values["user_id"], values["created_at"]
        await self._conn.execute(
            sa.update(webhooks).where(webhooks.c.id == webhook.id).values(values)
        )

    async def delete(self, webhook_id: UUID) -> None:
        await self._conn.execute(sa.delete(webhooks).where(webhooks.c.id == webhook_id))

    async def get(
        self, webhook_id: UUID, *, user_id: str | None, for_update: bool = False
    ) -> Webhook | None:
        stmt = sa.select(webhooks).where(webhooks.c.id == webhook_id)
        if user_id is not None:
            stmt = stmt.where(webhooks.c.user_id == user_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self._conn.execute(stmt)).first()
        return webhook_from_row(row) if row is not None else None

    async def count(self, user_id: str) -> int:
        stmt = sa.select(sa.func.count()).select_from(webhooks).where(webhooks.c.user_id == user_id)
        return int((await self._conn.execute(stmt)).scalar_one())

    async def lock_user(self, user_id: str) -> None:
        """Serialise creations of one user's webhooks (the per-user limit is then exact)."""
        await self._conn.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(user_id, 0)))
        )

    async def search(
        self, user_id: str | None, *, limit: int, after: tuple[datetime, UUID] | None = None
    ) -> list[Webhook]:
        """Newest first (by creation, then id), keyset-paged."""
        stmt = sa.select(webhooks)
        if user_id is not None:
            stmt = stmt.where(webhooks.c.user_id == user_id)
        if after is not None:
            stmt = stmt.where(sa.tuple_(webhooks.c.created_at, webhooks.c.id) < sa.tuple_(*after))
        stmt = stmt.order_by(webhooks.c.created_at.desc(), webhooks.c.id.desc()).limit(limit)
        return [webhook_from_row(r) for r in (await self._conn.execute(stmt)).all()]

    async def subscribed(self, user_id: str, event_type: str) -> list[Webhook]:
        """The user's enabled webhooks that subscribe to `event_type`."""
        stmt = sa.select(webhooks).where(
            webhooks.c.user_id == user_id,
            webhooks.c.enabled,
            webhooks.c.event_types.any_() == event_type,
        )
        return [webhook_from_row(r) for r in (await self._conn.execute(stmt)).all()]


@dataclass(frozen=True)
class Claimed:
    """A due delivery taken by the sender, with where and how to send it."""

    delivery: Delivery
    url: str
    secret_ciphertext: str


class DeliveryRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, items: Sequence[Delivery]) -> int:
        """Insert the deliveries; one for a (webhook, event) that has one already is skipped.
        The number inserted."""
        if not items:
            return 0
        rows = [
            {
                "id": d.id,
                "webhook_id": d.webhook_id,
                "user_id": d.user_id,
                "event_id": d.event_id,
                "event_type": d.event_type,
                "body": d.body,
                "status": str(d.status),
                "attempts": d.attempts,
                "retries": d.retries,
                "next_attempt_at": d.next_attempt_at,
                "created_at": d.created_at,
            }
            for d in items
        ]
        stmt = (
            pg.insert(deliveries)
            .values(rows)
            .on_conflict_do_nothing(constraint="uq_deliveries_webhook_event")
            .returning(deliveries.c.id)
        )
        return len((await self._conn.execute(stmt)).all())

    async def claim_due(self, now: datetime, *, limit: int, lease: timedelta) -> list[Claimed]:
        """Take up to `limit` due deliveries of enabled webhooks, oldest due first: each is moved
        `lease` ahead, so no other sender takes it while this one tries it (if this one dies, it
        is due again when the lease ends). Rows another sender holds are skipped, not waited for."""
        due = (
            sa.select(deliveries.c.id)
            .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
            .where(
                deliveries.c.status == str(DeliveryStatus.PENDING),
                deliveries.c.next_attempt_at <= now,
                webhooks.c.enabled,
            )
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit)
            .with_for_update(of=deliveries, skip_locked=True)
            .scalar_subquery()
        )
        stmt = (
            sa.update(deliveries)
            .where(deliveries.c.id.in_(due), webhooks.c.id == deliveries.c.webhook_id)
            .values(next_attempt_at=now + lease)
            .returning(*deliveries.c, webhooks.c.url, webhooks.c.secret_ciphertext)
        )
        rows = (await self._conn.execute(stmt)).all()
        return [
            Claimed(delivery_from_row(r), r._mapping["url"], r._mapping["secret_ciphertext"])
            for r in rows
        ]

    async def record(self, delivery: Delivery, attempt: Attempt) -> bool:
        """Save the delivery's state after an attempt and log the attempt; False (nothing
        written) when the delivery is gone (its webhook was deleted meanwhile)."""
        result = await self._conn.execute(
            sa.update(deliveries)
            .where(deliveries.c.id == delivery.id)
            .values(
                status=str(delivery.status),
                attempts=delivery.attempts,
                next_attempt_at=delivery.next_attempt_at,
                last_status_code=delivery.last_status_code,
                last_error=delivery.last_error,
                delivered_at=delivery.delivered_at,
            )
            .returning(deliveries.c.id)
        )
        if result.first() is None:
            return False
        await self._conn.execute(
            sa.insert(attempts).values(
                delivery_id=delivery.id,
                number=attempt.number,
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
                attempted_at=attempt.attempted_at,
                next_retry_at=attempt.next_retry_at,
            )
        )
        return True

    async def get(self, delivery_id: UUID) -> Delivery | None:
        row = (
            await self._conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id))
        ).first()
        return delivery_from_row(row) if row is not None else None

    async def of_webhook(
        self, webhook_id: UUID, *, limit: int, after: tuple[datetime, UUID] | None = None
    ) -> list[Delivery]:
        """Newest first, keyset-paged."""
        stmt = sa.select(deliveries).where(deliveries.c.webhook_id == webhook_id)
        if after is not None:
            stmt = stmt.where(
                sa.tuple_(deliveries.c.created_at, deliveries.c.id) < sa.tuple_(*after)
            )
        stmt = stmt.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc()).limit(limit)
        return [delivery_from_row(r) for r in (await self._conn.execute(stmt)).all()]

    async def attempts_of(self, delivery_ids: Sequence[UUID]) -> dict[UUID, list[Attempt]]:
        found: dict[UUID, list[Attempt]] = {i: [] for i in delivery_ids}
        if not delivery_ids:
            return found
        stmt = (
            sa.select(attempts)
            .where(attempts.c.delivery_id.in_(list(delivery_ids)))
            .order_by(attempts.c.delivery_id, attempts.c.number)
        )
        for row in (await self._conn.execute(stmt)).all():
            m = row._mapping
            found[m["delivery_id"]].append(
                Attempt(
                    number=m["number"],
                    status_code=m["status_code"],
                    error=m["error"],
                    duration_ms=m["duration_ms"],
                    attempted_at=m["attempted_at"],
                    next_retry_at=m["next_retry_at"],
                )
            )
        return found
