"""`model-server` command line: database set-up, serving, and the OpenAPI document (servicekit's
service CLI)."""

from pathlib import Path

from model_server.adapters.tables import SCHEMA
from model_server.config import Settings
from servicekit.cli import ServiceCli

cli = ServiceCli(
    name="model-server",
    settings=Settings,
    role="model_server",
    schema=SCHEMA,
    migrations=Path(__file__).resolve().parents[3] / "migrations",
    port=8005,
    create_app="model_server.entrypoints.app:create_app",
    serve_help="Serve the OpenAI-style API and load the deployed models (from the registry's events).",
)
app = cli.app
migrate = cli.migrate
alembic_config = cli.alembic_config
openapi_document = cli.openapi_document
