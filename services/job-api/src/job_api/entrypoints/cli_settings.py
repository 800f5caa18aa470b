"""Settings for the command line (every job-api command reads them the same way)."""

from typing import TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from job_api.config import DatabaseSettings, Settings

console = Console(stderr=True)

S = TypeVar("S", bound=DatabaseSettings)


def load(kind: type[S]) -> S:
    """Settings from the environment; a configuration error is one readable line, not a trace."""
    try:
        return kind()
    except ValidationError as exc:
        for error in exc.errors():
            console.print(
                f"[red]configuration error:[/red] {error['msg'].removeprefix('Value error, ')}"
            )
        raise typer.Exit(2) from None


def load_settings() -> Settings:
    return load(Settings)
