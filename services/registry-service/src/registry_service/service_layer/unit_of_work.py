"""The unit of work: the repositories and the outbox of one transaction.

The entry point opens the connection (servicekit.uow.Database) and commits or rolls back;
handlers only stage changes.
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import EventPayload
from messaging.outbox import Outbox
from registry_service.adapters.repository import ModelRepository
from registry_service.adapters.tables import outbox

SOURCE = "registry-service"
_OUTBOX = Outbox(outbox, source=SOURCE)


class UnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.models = ModelRepository(conn)

    async def publish(self, *payloads: EventPayload) -> None:
        await _OUTBOX.add(self.conn, *payloads)
