"""`webhook-service` command line: database set-up, serving, and the OpenAPI document
(servicekit's service CLI)."""

from pathlib import Path

from servicekit.cli import ServiceCli
from webhook_service.adapters.tables import SCHEMA
from webhook_service.config import Settings

cli = ServiceCli(
    name="webhook-service",
    settings=Settings,
    role="webhook_service",
    schema=SCHEMA,
    migrations=Path(__file__).resolve().parents[3] / "migrations",
    port=8006,
    create_app="webhook_service.entrypoints.app:create_app",
    serve_help="Serve the API, consume job and model events and send the webhooks' deliveries.",
)
app = cli.app
migrate = cli.migrate
alembic_config = cli.alembic_config
openapi_document = cli.openapi_document
