"""The unit of work: the repositories of one transaction (or one autocommit connection); the entry
point opens and commits it (servicekit.uow)."""

from sqlalchemy.ext.asyncio import AsyncConnection

from webhook_service.adapters.repository import DeliveryRepository, WebhookRepository

SOURCE = "webhook-service"


class UnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.webhooks = WebhookRepository(conn)
        self.deliveries = DeliveryRepository(conn)
