"""`job-api` command line: database set-up, serving and the OpenAPI document (servicekit's
service CLI), development tokens, workers and dead letters."""

from pathlib import Path
from typing import Annotated

import typer

from job_api.adapters.tables import SCHEMA
from job_api.config import DatabaseSettings, Settings
from job_api.entrypoints.cli_dead_letters import dead_letters
from job_api.entrypoints.cli_workers import workers
from servicekit.auth import mint_token
from servicekit.cli import OPENAPI_SETTINGS, ServiceCli, console, load_settings

cli = ServiceCli(
    name="job-api",
    settings=Settings,
    # `db-init` and `migrate` need no token or worker secrets.
    database_settings=DatabaseSettings,
    role="job_api",
    schema=SCHEMA,
    migrations=Path(__file__).resolve().parents[3] / "migrations",
    port=8000,
    create_app="job_api.entrypoints.app:create_app",
    openapi_settings={**OPENAPI_SETTINGS, "worker_key": "openapi-export-placeholder-key"},
    serve_help="Serve the API and run the relay, consumers and watchdog.",
)
app = cli.app
app.add_typer(dead_letters, name="dead-letters")
app.add_typer(workers, name="workers")
migrate = cli.migrate
alembic_config = cli.alembic_config
openapi_document = cli.openapi_document


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
    settings = load_settings(Settings)
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
