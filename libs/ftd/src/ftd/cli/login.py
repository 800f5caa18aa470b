"""`ftd login` / `ftd logout`: the token kept in the user's config folder (owner-only file)."""

import os
from typing import Annotated

import typer

from ftd import _api
from ftd.cli._common import JsonOption, Settings, api_command, console, print_json
from ftd.client import Client
from ftd.config import DEFAULT_BASE_URL, TokenStore, normalise_url


def _server(ctx: typer.Context) -> str:
    settings = ctx.find_object(Settings)
    url = (settings.base_url if settings else None) or os.environ.get("FTD_BASE_URL")
    if url:
        return normalise_url(url)
    current = TokenStore().current()
    return current.base_url if current else DEFAULT_BASE_URL


@api_command
def login(
    ctx: typer.Context,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The API token (a JWT from the web UI). Asked for, hidden, when not given.",
        ),
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="Check the token against the server before storing it.")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Store an API token for this server (FTD_BASE_URL or --base-url; default localhost:8000)."""
    server = _server(ctx)
    if not token:
        token = typer.prompt(f"API token for {server}", hide_input=True).strip()
    if not token:
        raise typer.BadParameter("the token is empty", param_hint="--token")
    if verify:
        with Client(base_url=server, token=token) as checker:
            checker.call(_api.list_jobs(limit=1))
    path = TokenStore().save(server, token)
    if as_json:
        print_json({"base_url": server, "stored_in": str(path), "verified": verify})
    else:
        console.print(f"Logged in to [bold]{server}[/]; the token is stored in {path}.")


@api_command
def logout(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Forget the stored token of this server."""
    server = _server(ctx)
    forgot = TokenStore().forget(server)
    if as_json:
        print_json({"base_url": server, "forgotten": forgot})
    elif forgot:
        console.print(f"Logged out of {server}.")
    else:
        console.print(f"No token was stored for {server}.")
