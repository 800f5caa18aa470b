"""`job-api` command line: database set-up, serving, and development tokens."""

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from alembic import command
from alembic.config import Config
from rich.console import Console

from job_api.adapters.tables import SCHEMA
from job_api.config import DatabaseSettings, Settings
from job_api.entrypoints.cli_dead_letters import dead_letters
from job_api.entrypoints.cli_settings import load, load_settings
from job_api.entrypoints.cli_workers import workers
from servicekit.auth import mint_token
from servicekit.db import bootstrap_service_database, sqlalchemy_dsn, with_credentials
from servicekit.logging import configure_logging

app = typer.Typer(help="Finetune Dispatcher job-api.", no_args_is_help=True)
app.add_typer(dead_letters, name="dead-letters")
app.add_typer(workers, name="workers")
console = Console(stderr=True)
MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
ROLE = "job_api"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_dsn(database_url).replace("%", "%%"))
    return cfg


def migrate(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


@app.command("db-init")
def db_init() -> None:
    """Create the database, the job_api role and the `jobs` schema (idempotent), then migrate."""
    settings = load(DatabaseSettings)
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
    """Apply migrations with JOB_API_DATABASE_URL."""
    migrate(load(DatabaseSettings).database_url)


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the API and run the relay, consumers and watchdog."""
    settings = load_settings()
    configure_logging(json_logs=settings.json_logs, level=settings.log_level)
    from job_api.entrypoints.app import create_app

    # uvicorn's access log is off: query strings can carry an EventSource token. The app logs
    # requests without them (AccessLogMiddleware, FTD_ACCESS_LOG).
    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, log_config=None)


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="User id (the JWT `sub`).")] = "dev-user",
    admin: Annotated[bool, typer.Option(help="Grant the admin role.")] = False,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 24 * 3600,
) -> None:
    """Print a development token signed with FTD_JWT_SECRET (HS256)."""
    if not sub.strip():
        console.print("[red]--sub must name a user (e.g. `make token SUB=alice`).[/red]")
        raise typer.Exit(2)
    settings = load_settings()
    if settings.jwt_secret is None:
        raise typer.BadParameter("FTD_JWT_SECRET is not set.")
    roles = ["admin"] if admin else []
    print(
        mint_token(
            settings.jwt_secret.get_secret_value(),
            sub,
            roles=roles,
            ttl_seconds=ttl,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
    )


def openapi_document() -> str:
    """The OpenAPI document as served at /openapi.json, rendered without a running stack."""
    from job_api.entrypoints.app import create_app

    # Placeholder credentials: building the document reads no secret and opens no connection.
    settings = Settings(
        environment="development",
        jwt_secret="openapi-export-placeholder-secret",  # noqa: S106 - never used to sign
        worker_key="openapi-export-placeholder-key",
    )
    return json.dumps(create_app(settings).openapi(), indent=2, sort_keys=True) + "\n"


@app.command()
def openapi(
    out: Annotated[Path, typer.Option(help="Where to write it.")] = Path(
        "docs/openapi/job-api.json"
    ),
    check: Annotated[bool, typer.Option(help="Only check that the file is current.")] = False,
) -> None:
    """Write (or check) the OpenAPI document of job-api."""
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
