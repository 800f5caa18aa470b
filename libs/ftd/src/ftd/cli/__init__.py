"""The `ftd` command: the SDK from a shell. `ftd --help` lists the commands; `ftd
--install-completion` installs shell completion."""

from typing import Annotated

import typer

from ftd.cli import data, jobs, login, models
from ftd.cli._common import Settings

app = typer.Typer(
    name="ftd",
    help="Finetune Dispatcher: upload data, run fine-tuning jobs, deploy the models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command()(login.login)
app.command()(login.logout)
app.add_typer(data.app, name="data")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")


@app.callback()
def settings(
    ctx: typer.Context,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            envvar="FTD_BASE_URL",
            help="The server (its gateway). Default: the one `ftd login` stored, else "
            "http://localhost:8000.",
        ),
    ] = None,
) -> None:
    """Token: FTD_TOKEN, else the one `ftd login` stored for the server."""
    ctx.obj = Settings(base_url)


def main() -> None:
    app()
