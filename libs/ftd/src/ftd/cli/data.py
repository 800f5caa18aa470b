"""`ftd data upload`: send a training file and print its validation report."""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TransferSpeedColumn,
)
from rich.table import Table

from ftd.cli._common import (
    EXIT_ERROR,
    JsonOption,
    api_command,
    client,
    console,
    err_console,
    print_json,
)
from ftd.errors import ValidationFailed
from ftd.models import Dataset, DryRun, JobType

app = typer.Typer(help="Training data: upload and validate files.", no_args_is_help=True)


def _problems(title: str, problems: list[dict[str, Any]], style: str) -> Table:
    table = Table(title=title, title_style=style, title_justify="left")
    for column in ("line", "column", "code", "message"):
        table.add_column(column, overflow="fold")
    for p in problems:
        table.add_row(
            str(p.get("line") or ""), str(p.get("column") or ""), str(p["code"]), p["message"]
        )
    return table


def print_report(report: dict[str, Any]) -> None:
    valid = report.get("valid")
    # The server's summary says it in a sentence ("The file is valid."); else the verdict.
    style = "bold green" if valid else "bold red"
    summary = report.get("summary") or f"The file is {'valid' if valid else 'not valid'}."
    console.print(f"[{style}]{summary}[/]", highlight=False)
    facts = {
        "format": report.get("format"),
        "shape": report.get("shape"),
        "trains": ", ".join(report.get("job_types") or []) or "-",
        "rows": report.get("rows"),
        "columns": ", ".join(report.get("columns") or []) or "-",
    }
    for key, value in facts.items():
        console.print(f"  {key:<8} {value}")
    if report.get("errors"):
        more = " (first ones)" if report.get("errors_truncated") else ""
        title = f"{report.get('error_count')} error(s){more}"
        console.print(_problems(title, report["errors"], "bold red"))
    if report.get("warnings"):
        console.print(_problems("warnings", report["warnings"], "yellow"))


@app.command()
@api_command
def upload(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV or JSONL file.")
    ],
    job_type: Annotated[
        JobType | None, typer.Option("--type", "-t", help="The job type the file is for.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and report; store nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Upload FILE, print its validation report and the training_data_url for a job. Exits 1
    when the file is not valid."""
    with client(ctx) as ftd:
        try:
            if as_json:
                result = ftd.datasets.upload(file, job_type=job_type, dry_run=dry_run)
            else:
                result = _upload_with_bar(ftd, file, job_type, dry_run)
        except ValidationFailed as exc:
            if not isinstance(exc.details, dict) or "errors" not in exc.details:
                raise
            if as_json:
                print_json({"error": exc.as_dict()})
            else:
                print_report(exc.details)
            raise typer.Exit(EXIT_ERROR) from None
    if as_json:
        print_json(result)
        return
    print_report(result.validation)
    if isinstance(result, Dataset):
        console.print(f"\nDataset [bold]{result.id}[/] stored ({result.size_bytes} bytes).")
        console.print(f"training_data_url: [bold cyan]{result.training_data_url}[/]")
    elif isinstance(result, DryRun):
        console.print("\nDry run: nothing was stored.")


def _upload_with_bar(
    ftd: Any, file: Path, job_type: JobType | None, dry_run: bool
) -> Dataset | DryRun:
    columns = (*Progress.get_default_columns()[:1], BarColumn(), DownloadColumn())
    with Progress(*columns, TransferSpeedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task(f"Uploading {file.name}", total=file.stat().st_size)

        def progress(sent: int, total: int | None) -> None:
            bar.update(task, completed=sent, total=total)

        result: Dataset | DryRun = ftd.datasets.upload(
            file, job_type=job_type, dry_run=dry_run, progress=progress
        )
        return result
