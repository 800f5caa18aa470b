"""`registry-service` command line: database set-up, serving, and the OpenAPI document."""

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from rich.console import Console

from registry_service.adapters.tables import SCHEMA
from registry_service.config import Settings
from servicekit.db import bootstrap_service_database, sqlalchemy_dsn, with_credentials
from servicekit.logging import configure_logging

app = typer.Typer(help="Finetune Dispatcher registry-service.", no_args_is_help=True)
console = Console(stderr=True)
MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
ROLE = "registry_service"


def _settings() -> Settings:
    """Settings from the environment; a configuration error is one readable line, not a trace."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            console.print(
                f"[red]configuration error:[/red] {error['msg'].removeprefix('Value error, ')}"
            )
        raise typer.Exit(2) from None


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_dsn(database_url).replace("%", "%%"))
    return cfg


def migrate(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


@app.command("db-init")
def db_init() -> None:
    """Create the database, the registry_service role and the `registry` schema (idempotent),
    then migrate."""
    settings = _settings()
    password = settings.db_password.get_secret_value()
    asyncio.run(
        bootstrap_service_database(
            settings.admin_dsn,
            database=settings.database_name,
            role=ROLE,
            password=password,
            schema=SCHEMA,
        )
    )
    migrate(
        with_credentials(
            settings.admin_dsn, user=ROLE, password=password, database=settings.database_name
        )
    )
    console.print(f"[green]database {settings.database_name}: schema {SCHEMA} is at head[/green]")


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply migrations with REGISTRY_SERVICE_DATABASE_URL."""
    migrate(_settings().database_url)


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8003) -> None:
    """Serve the API and run the outbox relay and the model.completed consumer."""
    settings = _settings()
    configure_logging(json_logs=settings.json_logs, level=settings.log_level)
    from registry_service.entrypoints.app import create_app

    # The app logs requests itself (AccessLogMiddleware, FTD_ACCESS_LOG), without query strings.
    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, log_config=None)


def openapi_document() -> str:
    """The OpenAPI document as served at /openapi.json, rendered without a running stack."""
    from registry_service.entrypoints.app import create_app

    # A placeholder secret: building the document reads no secret and opens no connection.
    settings = Settings(
        environment="development",
        jwt_secret="openapi-export-placeholder-secret",  # noqa: S106 - never used to sign
    )
    return json.dumps(create_app(settings).openapi(), indent=2, sort_keys=True) + "\n"


@app.command()
def openapi(
    out: Annotated[Path, typer.Option(help="Where to write it.")] = Path(
        "docs/openapi/registry-service.json"
    ),
    check: Annotated[bool, typer.Option(help="Only check that the file is current.")] = False,
) -> None:
    """Write (or check) the OpenAPI document of registry-service."""
    document = openapi_document()
    if check:
        if not out.exists() or out.read_text() != document:
            console.print(f"[red]{out} is stale: run `make openapi`[/red]")
            raise typer.Exit(1)
        console.print(f"{out} is current")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(document)
    console.print(f"wrote {out}")
