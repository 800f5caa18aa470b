"""What every command shares: the client, `--json` output, and turning SDK errors into a message
and an exit status.

Exit statuses: 0 success; 1 an API error, an invalid file, or a watched job that failed; 2 a usage
error (click's); 3 a watched job that was cancelled.
"""

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console

from ftd.client import Client
from ftd.errors import FtdError

EXIT_ERROR = 1
EXIT_CANCELLED = 3

P = ParamSpec("P")
R = TypeVar("R")

JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="Machine-readable output: JSON on stdout, no colour, no progress bars."
    ),
]

console = Console()
err_console = Console(stderr=True)


class Settings:
    """The app-wide options (`ftd --base-url ...`), kept on the click context."""

    def __init__(self, base_url: str | None) -> None:
        self.base_url = base_url


def client(ctx: typer.Context) -> Client:
    settings = ctx.find_object(Settings)
    return Client(base_url=settings.base_url if settings else None)


def jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_json_line(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def report_error(exc: FtdError, as_json: bool) -> None:
    if as_json:
        print_json({"error": exc.as_dict()})
        return
    status = f" ({exc.status})" if exc.status else ""
    err_console.print(f"[bold red]Error{status}[/] [dim]{exc.code}[/]: {exc.message}")


def api_command(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command; an SDK error is printed (as JSON with `--json`) and exits 1."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except FtdError as exc:
            report_error(exc, bool(kwargs.get("as_json")))
            raise typer.Exit(EXIT_ERROR) from None

    return run


def when(value: Any) -> str:
    """A timestamp as short text for tables."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"
