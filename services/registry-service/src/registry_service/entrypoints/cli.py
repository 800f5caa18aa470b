"""`registry-service` command line: database set-up, serving, and the OpenAPI document
(servicekit's service CLI)."""

from pathlib import Path

from registry_service.adapters.tables import SCHEMA
from registry_service.config import Settings
from servicekit.cli import ServiceCli

cli = ServiceCli(
    name="registry-service",
    settings=Settings,
    role="registry_service",
    schema=SCHEMA,
    migrations=Path(__file__).resolve().parents[3] / "migrations",
    port=8003,
    create_app="registry_service.entrypoints.app:create_app",
    serve_help="Serve the API and run the outbox relay and the model.completed consumer.",
)
app = cli.app
migrate = cli.migrate
alembic_config = cli.alembic_config
openapi_document = cli.openapi_document
