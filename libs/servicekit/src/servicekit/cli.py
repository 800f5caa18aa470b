"""The command line every service shares (typer): `db-init`, `migrate`, `serve` and `openapi`.

    cli = ServiceCli(name="registry-service", settings=Settings, role="registry_service",
                     schema=SCHEMA, migrations=MIGRATIONS, port=8003,
                     create_app="registry_service.entrypoints.app:create_app")
    app = cli.app          # the console script; a service adds its own commands to it

Settings are read from the environment once a command runs; a configuration error is one
readable line per problem (never a value: settings hide their inputs) and exit status 2.
"""

import asyncio
import importlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

import typer
import uvicorn
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from pydantic import ValidationError
from rich.console import Console

from servicekit.config import DatabaseSettings, PlatformSettings
from servicekit.db import bootstrap_service_database, sqlalchemy_dsn, with_credentials
from servicekit.logging import configure_logging

S = TypeVar("S", bound=PlatformSettings)
D = TypeVar("D", bound=DatabaseSettings)

console = Console(stderr=True)
# Building the document reads no secret and opens no connection: a placeholder will do.
OPENAPI_SETTINGS: Mapping[str, Any] = {
    "environment": "development",
    "jwt_secret": "openapi-export-placeholder-secret",
}


def load_settings(kind: type[D]) -> D:
    """Settings from the environment; a configuration error is one readable line, not a trace."""
    try:
        return kind()
    except ValidationError as exc:
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            field = ".".join(str(part) for part in error["loc"])
            where = f"{_variable(kind, field)}: " if field else ""
            console.print(f"[red]configuration error:[/red] {where}{message}")
        raise typer.Exit(2) from None


def _variable(kind: type[DatabaseSettings], field: str) -> str:
    """The environment variable a field is read from, to name it in an error."""
    info = kind.model_fields.get(field)
    alias = getattr(info.validation_alias, "choices", None) if info else None
    if alias:
        return str(alias[0])
    return kind.env_name(field) if info else field.upper()


class ServiceCli(Generic[S]):
    """`name`: the service (and its console script); `settings`: its Settings class, read by
    `serve` and `openapi`; `database_settings`: what `db-init` and `migrate` read (default
    `settings`); `role` and `schema`: its database role and schema; `migrations`: its Alembic
    folder; `port`: `serve`'s default; `create_app`: "module:function" building the app from the
    settings (imported when needed, so `db-init` does not load the app);
    `openapi_settings`: placeholders the document is built with."""

    def __init__(
        self,
        *,
        name: str,
        settings: type[S],
        role: str,
        schema: str,
        migrations: Path,
        port: int,
        create_app: str,
        database_settings: type[DatabaseSettings] | None = None,
        openapi_settings: Mapping[str, Any] = OPENAPI_SETTINGS,
        serve_help: str = "Serve the API and run its background work.",
    ) -> None:
        self.name = name
        self.settings = settings
        self.database_settings = database_settings or settings
        self.role = role
        self.schema = schema
        self.migrations = migrations
        self._create_app = create_app
        self._openapi_settings = openapi_settings
        self.app = typer.Typer(help=f"Finetune Dispatcher {name}.", no_args_is_help=True)
        self._commands(port, serve_help)

    def create_app(self, settings: S) -> FastAPI:
        module, _, function = self._create_app.partition(":")
        factory: Callable[[S], FastAPI] = getattr(importlib.import_module(module), function)
        return factory(settings)

    def alembic_config(self, database_url: str) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(self.migrations))
        cfg.set_main_option("sqlalchemy.url", sqlalchemy_dsn(database_url).replace("%", "%%"))
        return cfg

    def migrate(self, database_url: str) -> None:
        command.upgrade(self.alembic_config(database_url), "head")

    def db_init(self) -> None:
        settings = load_settings(self.database_settings)
        password = settings.db_password.get_secret_value()
        asyncio.run(
            bootstrap_service_database(
                settings.admin_dsn,
                database=settings.database_name,
                role=self.role,
                password=password,
                schema=self.schema,
            )
        )
        self.migrate(
            with_credentials(
                settings.admin_dsn,
                user=self.role,
                password=password,
                database=settings.database_name,
            )
        )
        console.print(
            f"[green]database {settings.database_name}: schema {self.schema} is at head[/green]"
        )

    def serve(self, host: str, port: int) -> None:
        settings = load_settings(self.settings)
        configure_logging(json_logs=settings.json_logs, level=settings.log_level)
        # uvicorn's access log is off: query strings can carry a token or a ticket. The app
        # logs requests without them (AccessLogMiddleware, FTD_ACCESS_LOG).
        app = self.create_app(settings)
        uvicorn.run(app, host=host, port=port, access_log=False, log_config=None)

    def openapi_document(self) -> str:
        """The OpenAPI document as served at /openapi.json, rendered without a running stack."""
        app = self.create_app(self.settings(**self._openapi_settings))
        return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"

    def write_openapi(self, out: Path, *, check: bool) -> None:
        document = self.openapi_document()
        if check:
            if not out.exists() or out.read_text() != document:
                console.print(f"[red]{out} is stale: run `make openapi`[/red]")
                raise typer.Exit(1)
            console.print(f"{out} is current")
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(document)
        console.print(f"wrote {out}")

    def _commands(self, port: int, serve_help: str) -> None:
        cli = self
        default_out = Path(f"docs/openapi/{self.name}.json")
        url_variable = self.database_settings.env_name("database_url")

        @self.app.command(
            "db-init",
            help=f"Create the database, the {self.role} role and the `{self.schema}` schema "
            "(idempotent), then migrate.",
        )
        def db_init() -> None:
            cli.db_init()

        @self.app.command("migrate", help=f"Apply migrations with {url_variable}.")
        def migrate() -> None:
            cli.migrate(load_settings(cli.database_settings).database_url)

        @self.app.command("serve", help=serve_help)
        def serve(host: str = "127.0.0.1", port: int = port) -> None:
            cli.serve(host, port)

        @self.app.command("openapi", help=f"Write (or check) the OpenAPI document of {self.name}.")
        def openapi(
            out: Annotated[Path, typer.Option(help="Where to write it.")] = default_out,
            check: Annotated[
                bool, typer.Option(help="Only check that the file is current.")
            ] = False,
        ) -> None:
            cli.write_openapi(out, check=check)
