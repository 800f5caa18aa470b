"""`ftd models list|deploy|undeploy|call`: the registry of trained models, and calling the
deployed ones."""

import sys
from typing import Annotated

import typer
from rich.table import Table

from ftd.cli._common import JsonOption, api_command, client, console, print_json, when
from ftd.client import Client
from ftd.errors import FtdError
from ftd.models import Classifications, Embeddings, JobType, ModelStatus, RegisteredModel

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


# How many numbers of each vector the readable output of an embedding shows.
SHOWN_DIMENSIONS = 6


def _deployed(ftd: Client, name: str) -> RegisteredModel:
    """The deployed version of `owner/name` (its job type says which /v1 route serves it)."""
    found = ftd.models.list(name=name, status=ModelStatus.DEPLOYED, limit=1)
    if not found:
        raise FtdError(
            f"No deployed model is named {name!r}. `ftd models list --name {name}` shows its "
            "versions; deploy one with `ftd models deploy ID`.",
            code="model_not_deployed",
        )
    return found[0]


def _print_embeddings(result: Embeddings, texts: list[str]) -> None:
    for text, vector in zip(texts, result.vectors, strict=True):
        head = ", ".join(f"{x:.4f}" for x in vector[:SHOWN_DIMENSIONS])
        more = ", ..." if len(vector) > SHOWN_DIMENSIONS else ""
        console.print(f"[bold]{text}[/]")
        console.print(f"  {len(vector)} dimensions: [{head}{more}]", highlight=False)


def _print_classifications(result: Classifications, texts: list[str]) -> None:
    table = Table()
    for column in ("text", "label", "score", "scores"):
        table.add_column(column, overflow="fold")
    for text, item in zip(texts, sorted(result.data, key=lambda c: c.index), strict=True):
        others = ", ".join(f"{label} {p:.3f}" for label, p in sorted(item.scores.items()))
        table.add_row(text, f"[green]{item.label}[/]", f"{item.score:.3f}", others)
    console.print(table)


@app.command()
@api_command
def call(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The deployed model's name, owner/name.")],
    text: Annotated[
        list[str] | None,
        typer.Option("--text", help="A text to embed or classify (repeat for more)."),
    ] = None,
    message: Annotated[
        list[str] | None,
        typer.Option(
            "--message", help="A chat model (LoRA): your message (repeat: one conversation)."
        ),
    ] = None,
    system: Annotated[
        str | None, typer.Option(help="A chat model: the system message first.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="A chat model: at most this many tokens.")
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(min=0, max=2, help="A chat model: sampling temperature (0: greedy)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Call a deployed model: embed or classify the --text(s), or chat (--message; the answer
    is printed as it is generated). The model's type picks the route (/v1/embeddings,
    /v1/classify, /v1/chat/completions)."""
    texts, messages = text or [], message or []
    with client(ctx) as ftd:
        model = _deployed(ftd, name)
        if model.job_type is JobType.LLM_LORA:
            if not messages:
                raise typer.BadParameter(
                    f"{name} is a chat model ({model.job_type}): give --message.",
                    param_hint="--message",
                )
            chat = [{"role": "system", "content": system}] if system else []
            chat += [{"role": "user", "content": m} for m in messages]
            if as_json:
                print_json(
                    ftd.models.chat(name, chat, max_tokens=max_tokens, temperature=temperature)
                )
                return
            pieces = ftd.models.chat(
                name, chat, stream=True, max_tokens=max_tokens, temperature=temperature
            )
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            return
        if not texts:
            raise typer.BadParameter(
                f"{name} is a {model.job_type} model: give --text.", param_hint="--text"
            )
        if model.job_type is JobType.EMBEDDING:
            vectors = ftd.models.embed(name, texts)
            if as_json:
                print_json(vectors)
            else:
                _print_embeddings(vectors, texts)
            return
        labels = ftd.models.classify(name, texts)
    if as_json:
        print_json(labels)
    else:
        _print_classifications(labels, texts)
