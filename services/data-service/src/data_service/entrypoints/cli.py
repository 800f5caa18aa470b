"""`data-service` command line: database set-up, serving, and the OpenAPI document
(servicekit's service CLI)."""

from pathlib import Path

from data_service.adapters.tables import SCHEMA
from data_service.config import Settings
from servicekit.cli import ServiceCli

cli = ServiceCli(
    name="data-service",
    settings=Settings,
    role="data_service",
    schema=SCHEMA,
    migrations=Path(__file__).resolve().parents[3] / "migrations",
    port=8002,
    create_app="data_service.entrypoints.app:create_app",
    serve_help="Serve the API and run the outbox relay and the job-events consumer.",
)
app = cli.app
migrate = cli.migrate
openapi_document = cli.openapi_document

if __name__ == "__main__":
    app()
