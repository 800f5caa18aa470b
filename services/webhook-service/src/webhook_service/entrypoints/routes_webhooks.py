"""User routes: create, list, read, change and delete webhooks; rotate the signing secret; send a
test ping; read the delivery log."""

from datetime import UTC, datetime
from uuid import UUID

from fastapi import APIRouter, status

from servicekit.responses import CursorQuery, Data, Page, PageLimit, error_responses, keyset_after
from webhook_service.entrypoints.deps import ReadUowDep, StateDep, UowDep, UserDep, scope
from webhook_service.entrypoints.schemas import (
    DeletedResponse,
    DeliveryResponse,
    WebhookCreate,
    WebhookResponse,
    WebhookUpdate,
    WebhookWithSecret,
)
from webhook_service.service_layer import deliveries as delivery_service
from webhook_service.service_layer import webhooks as webhook_service

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"], responses=error_responses(401, 422))


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(409))
async def create_webhook(
    body: WebhookCreate, uow: UowDep, state: StateDep, user: UserDep
) -> Data[WebhookWithSecret]:
    """Register a URL to be told of your events. The answer holds the signing secret: it is
    shown this once (rotate it to get a new one)."""
    created = await webhook_service.create_webhook(
        uow,
        user_id=user.user_id,
        url=body.url,
        event_types=[str(t) for t in body.event_types],
        description=body.description,
        policy=state.policy,
        cipher=state.cipher,
        max_per_user=state.max_webhooks_per_user,
        now=datetime.now(UTC),
    )
    return Data(data=WebhookWithSecret.with_secret(created.webhook, created.secret))


@router.get("")
async def list_webhooks(
    uow: ReadUowDep, user: UserDep, limit: PageLimit = 50, cursor: CursorQuery = None
) -> Page[WebhookResponse]:
    """Your webhooks, newest first (never their secrets)."""
    webhooks, nxt = await webhook_service.list_webhooks(
        uow, user_id=scope(user), limit=limit, after=keyset_after(cursor)
    )
    return Page.after([WebhookResponse.of(w) for w in webhooks], nxt, limit)


@router.get("/{webhook_id:uuid}", responses=error_responses(404))
async def get_webhook(webhook_id: UUID, uow: ReadUowDep, user: UserDep) -> Data[WebhookResponse]:
    webhook = await webhook_service.get_webhook(uow, webhook_id, user_id=scope(user))
    return Data(data=WebhookResponse.of(webhook))


@router.patch("/{webhook_id:uuid}", responses=error_responses(404))
async def update_webhook(
    webhook_id: UUID, body: WebhookUpdate, uow: UowDep, state: StateDep, user: UserDep
) -> Data[WebhookResponse]:
    """Change the URL, the events, the description, or disable (enable) the webhook."""
    changes = webhook_service.Changes(
        url=body.url,
        event_types=[str(t) for t in body.event_types] if body.event_types is not None else None,
        description=body.description,
        enabled=body.enabled,
    )
    webhook = await webhook_service.update_webhook(
        uow, webhook_id, changes, user_id=scope(user), policy=state.policy, now=datetime.now(UTC)
    )
    return Data(data=WebhookResponse.of(webhook))


@router.delete("/{webhook_id:uuid}", responses=error_responses(404))
async def delete_webhook(webhook_id: UUID, uow: UowDep, user: UserDep) -> Data[DeletedResponse]:
    """Delete the webhook, its pending deliveries and its delivery log."""
    webhook = await webhook_service.delete_webhook(uow, webhook_id, user_id=scope(user))
    return Data(data=DeletedResponse(id=webhook.id, deleted=True))


@router.post("/{webhook_id:uuid}/rotate-secret", responses=error_responses(404))
async def rotate_secret(
    webhook_id: UUID, uow: UowDep, state: StateDep, user: UserDep
) -> Data[WebhookWithSecret]:
    """Replace the signing secret; the new one (shown this once) signs every attempt from now
    on, retries of earlier events included."""
    rotated = await webhook_service.rotate_secret(
        uow, webhook_id, user_id=scope(user), cipher=state.cipher, now=datetime.now(UTC)
    )
    return Data(data=WebhookWithSecret.with_secret(rotated.webhook, rotated.secret))


@router.post("/{webhook_id:uuid}/test", responses=error_responses(404))
async def test_webhook(webhook_id: UUID, state: StateDep, user: UserDep) -> Data[DeliveryResponse]:
    """Send a signed `ping` event now and answer with how it went (tried once, logged in the
    delivery log like any delivery)."""
    delivery, attempt = await delivery_service.send_test(
        state.units, state.sender, webhook_id, user_id=scope(user)
    )
    return Data(data=DeliveryResponse.of(delivery, [attempt]))


@router.get("/{webhook_id:uuid}/deliveries", responses=error_responses(404))
async def list_deliveries(
    webhook_id: UUID,
    uow: ReadUowDep,
    user: UserDep,
    limit: PageLimit = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryResponse]:
    """The delivery log: each delivery (newest first) with its attempts: status code, error,
    duration, the next retry, when it was delivered."""
    page, nxt = await delivery_service.delivery_log(
        uow, webhook_id, user_id=scope(user), limit=limit, after=keyset_after(cursor)
    )
    return Page.after([DeliveryResponse.of(d, attempts) for d, attempts in page], nxt, limit)
