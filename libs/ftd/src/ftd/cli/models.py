"""`ftd models list|deploy|undeploy`: the registry of trained models."""

from typing import Annotated

import typer
from rich.table import Table

from ftd.cli._common import JsonOption, api_command, client, console, print_json, when
from ftd.models import JobType, ModelStatus, RegisteredModel

app = typer.Typer(help="Trained models in the registry.", no_args_is_help=True)

STATUS_STYLE = {"registered": "yellow", "deployed": "green", "retired": "dim"}


def _said(model: RegisteredModel) -> str:
    style = STATUS_STYLE.get(model.status, "white")
    return (
        f"Model [bold]{model.name}[/] v{model.version} ({model.id}) is [{style}]{model.status}[/]."
    )


@app.command("list")
@api_command
def list_models(
    ctx: typer.Context,
    job_type: Annotated[JobType | None, typer.Option("--type", "-t")] = None,
    status: Annotated[ModelStatus | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option(help="One output name, owner/name.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    cursor: Annotated[str | None, typer.Option(help="The next_cursor of a previous page.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List your models, newest first."""
    with client(ctx) as ftd:
        page = ftd.models.list(
            job_type=job_type, status=status, name=name, limit=limit, cursor=cursor
        )
    if as_json:
        print_json(
            {"data": [m.model_dump(mode="json") for m in page], "next_cursor": page.next_cursor}
        )
        return
    table = Table()
    for column in ("id", "name", "version", "type", "status", "uri", "created"):
        table.add_column(column, overflow="fold")
    for m in page:
        table.add_row(
            str(m.id),
            m.name,
            str(m.version),
            m.job_type,
            f"[{STATUS_STYLE.get(m.status, 'white')}]{m.status}[/]",
            m.uri,
            when(m.created_at),
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"[dim]More: ftd models list --cursor {page.next_cursor}[/]")


@app.command()
@api_command
def deploy(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="The model version's id.")],
    as_json: JsonOption = False,
) -> None:
    """Deploy a model version (the deployed version of the same name is retired)."""
    with client(ctx) as ftd:
        model = ftd.models.deploy(model_id)
    if as_json:
        print_json(model)
    else:
        console.print(_said(model))


@app.command()
@api_command
def undeploy(
    ctx: typer.Context,
    model_id: Annotated[str, typer.Argument(help="The model version's id.")],
    as_json: JsonOption = False,
) -> None:
    """Take a model version out of service (it can be deployed again)."""
    with client(ctx) as ftd:
        model = ftd.models.undeploy(model_id)
    if as_json:
        print_json(model)
    else:
        console.print(_said(model))
