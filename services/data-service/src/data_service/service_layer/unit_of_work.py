"""The unit of work: the repositories and the outbox of one transaction on one connection.

The entry point opens the transaction (servicekit.uow.Database) and commits or rolls back;
service functions only stage changes.
"""

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import EventPayload
from data_service.adapters.repository import DatasetRepository, JobUseRepository
from data_service.adapters.tables import outbox
from messaging.outbox import Outbox

SOURCE = "data-service"
_OUTBOX = Outbox(outbox, source=SOURCE)


class UnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.datasets = DatasetRepository(conn)
        self.jobs = JobUseRepository(conn)
        # Storage keys whose files the entry point removes once this transaction has committed.
        self.files_to_delete: list[str] = []

    async def publish(self, *payloads: EventPayload) -> None:
        await _OUTBOX.add(self.conn, *payloads)
