"""Helpers shared by data-service tests (importable: pytest's `pythonpath` lists this folder);
what every service's tests share comes from servicekit.testing."""

from pathlib import Path
from typing import Any

from servicekit.testing import ADMIN_DSN as ADMIN_DSN
from servicekit.testing import AMQP_URL as AMQP_URL
from servicekit.testing import JWT_SECRET as JWT_SECRET
from servicekit.testing import eventually as eventually
from servicekit.testing import free_socket as free_socket
from servicekit.testing import served as served
from servicekit.testing import user_headers as user_headers

TICKET_SECRET = "test-ticket-secret-0123456789abcdef"
TABLES = ("data.datasets", "data.dataset_jobs", "data.outbox", "data.inbox")


def csv_bytes(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def classifier_csv(n: int = 12) -> bytes:
    return csv_bytes(
        "text,label", [f"sentence number {i},{'pos' if i % 2 else 'neg'}" for i in range(n)]
    )


def files(data: bytes, filename: str = "train.csv", **fields: Any) -> dict[str, Any]:
    return {"files": {"file": (filename, data, "text/csv")}, "data": fields}


async def publish_event(amqp_url: str, prefix: str, payload: Any) -> None:
    """Publish a job-api event on the test namespace's events exchange (as job-api's relay would)."""
    from contracts.events import Envelope
    from contracts.routing import BrokerNames
    from messaging.broker import Broker

    broker = Broker(amqp_url, BrokerNames(prefix), client_name="test-publisher")
    await broker.connect()
    try:
        await broker.publish(Envelope.wrap(payload, source="job-api"), payload.routing_key())
    finally:
        await broker.close()


def stored_files(root: Path, pattern: str = "*") -> list[Path]:
    """Files under a storage folder (a plain function: async tests call it between awaits)."""
    return [p for p in root.rglob(pattern) if p.is_file()]
