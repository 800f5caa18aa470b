"""The unit of work: the repositories and the outbox of one transaction.

The entry point opens the transaction (servicekit.uow.Database) and commits or rolls back;
handlers only stage changes.
"""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.catalogue import Catalogue
from contracts.events import EventPayload
from job_api.adapters.repository import DatasetRepository, JobEventRepository, JobRepository
from job_api.adapters.tables import outbox
from messaging.outbox import Outbox

SOURCE = "job-api"
_OUTBOX = Outbox(outbox, source=SOURCE)


class UnitOfWork:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.jobs = JobRepository(conn)
        self.events = JobEventRepository(conn)
        self.datasets = DatasetRepository(conn)

    async def publish(self, *payloads: EventPayload) -> None:
        await _OUTBOX.add(self.conn, *payloads)


@dataclass(frozen=True)
class Policy:
    """The rules a deployment chooses (read from settings by the entry points)."""

    catalogue: Catalogue
    lease: timedelta = timedelta(seconds=90)
    max_attempts: int = 3
    # A pending job is offered again when its last offer is this old (a lost or dead-lettered
    # message must not leave it waiting forever).
    redispatch_after: timedelta = timedelta(minutes=30)
    allow_external_data_urls: bool = True
    data_ticket_secret: str = ""
    data_ticket_ttl: timedelta = timedelta(minutes=30)
    public_base_url: str = "http://localhost:8000"
