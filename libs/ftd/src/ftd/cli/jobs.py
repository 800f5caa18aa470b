"""`ftd jobs create|list|get|cancel|watch`."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ftd.cli._common import JsonOption, api_command, client, console, print_json, when
from ftd.cli.watch import watch_job
from ftd.client import Client
from ftd.errors import FtdError
from ftd.models import Dataset, JobInfo, JobStatus, JobType

app = typer.Typer(help="Fine-tuning jobs.", no_args_is_help=True)

STATUS_STYLE = {
    "pending": "yellow",
    "running": "blue",
    "completed": "green",
    "failed": "red",
    "cancelled": "dim",
}


def styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _hyperparameter(pair: str) -> tuple[str, Any]:
    key, sep, raw = pair.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--hp")
    try:
        value = json.loads(raw)  # numbers and booleans as such
    except ValueError:
        value = raw
    return key.strip(), value


def _base_model(ftd: Client, job_type: JobType) -> str:
    catalogue = next((c for c in ftd.base_models() if c.job_type == job_type), None)
    if catalogue is None or not catalogue.models:
        raise FtdError(f"The server offers no base model for {job_type} jobs.", code="no_model")
    return catalogue.models[0].id


def print_job(job: JobInfo) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    steps = f"{job.step}/{job.total_steps}" if job.total_steps else "-"
    rows: dict[str, Any] = {
        "id": job.id,
        "status": f"{styled(job.status)} ({job.phase})",
        "type": job.job_type,
        "base model": job.base_model,
        "output": job.output_model + (f"@{job.output_revision}" if job.output_revision else ""),
        "provider": f"{job.gpu_provider} ({job.worker_pool} pool)",
        "progress": f"{job.progress:.0f}%  step {steps}  attempt {job.attempt}/{job.max_attempts}",
        "data": job.training_data_url,
        "created": when(job.created_at),
        "started": when(job.started_at),
        "ended": when(job.completed_at),
    }
    if job.metrics:
        rows["metrics"] = ", ".join(f"{k}={v:.4g}" for k, v in sorted(job.metrics.items()))
    if job.error:
        rows["error"] = f"[red]{job.error}[/] ({job.failure_class})"
    if job.waiting is not None:
        rows["waiting"] = f"{job.waiting.message}\n[dim]{job.waiting.command}[/]"
    for key, value in rows.items():
        table.add_row(key, str(value))
    console.print(table)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{max(1, round(seconds))} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def print_estimate(estimate: dict[str, Any]) -> None:
    steps = estimate.get("steps")
    rows = estimate.get("train_rows")
    console.print(
        f"{steps if steps is not None else '?'} steps: {rows if rows is not None else '?'} "
        f"training rows, {estimate.get('epochs')} epoch(s), batch size {estimate.get('batch_size')}"
    )
    table = Table("worker kind", "online", "time", "basis")
    for e in estimate.get("estimates", []):
        basis = e["basis"] + (f" ({e['sample_count']} jobs)" if e["basis"] == "measured" else "")
        table.add_row(e["worker_kind"], str(e["workers_online"]), _duration(e["seconds"]), basis)
    console.print(table)
    for warning in estimate.get("warnings", []):
        console.print(f"[yellow]{warning['message']}[/]")


@app.command()
@api_command
def create(
    ctx: typer.Context,
    job_type: Annotated[JobType, typer.Option("--type", "-t", help="The kind of job.")],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            "-d",
            help="A training_data_url (ftd://datasets/... or https://...), or a local file to "
            "upload first.",
        ),
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Output model name, `owner/name`.")],
    provider: Annotated[
        str, typer.Option("--provider", "-p", help="GPU provider: colab, kaggle, runpod, local.")
    ],
    base_model: Annotated[
        str | None,
        typer.Option("--base-model", "-m", help="Default: the catalogue's first for the type."),
    ] = None,
    hp: Annotated[
        list[str] | None,
        typer.Option("--hp", help="A hyperparameter, KEY=VALUE (repeatable), e.g. epochs=2."),
    ] = None,
    project: Annotated[str | None, typer.Option(help="A project id to file it under.")] = None,
    pool: Annotated[
        str | None, typer.Option(help="Worker pool: shared (default), private or any.")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Then watch it until it ends.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Create nothing: print the steps and the time on each kind of worker online.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a fine-tuning job."""
    hyperparameters = dict(_hyperparameter(p) for p in hp or [])
    with client(ctx) as ftd:
        url = data
        if dry_run:
            if Path(data).is_file():
                raise FtdError(
                    "--dry-run uploads nothing: upload the file first (`ftd data upload`) and "
                    "pass its ftd://datasets/... reference.",
                    code="dry_run_needs_reference",
                )
            estimate = ftd.jobs.estimate(
                job_type=job_type,
                base_model=base_model or _base_model(ftd, job_type),
                training_data_url=url,
                output_model=output,
                gpu_provider=provider,
                hyperparameters=hyperparameters,
                worker_pool=pool,
            )
            if as_json:
                print_json(estimate)
            else:
                print_estimate(estimate)
            return
        if Path(data).is_file():
            uploaded = ftd.datasets.upload(Path(data), job_type=job_type)
            assert isinstance(uploaded, Dataset)  # not a dry run
            url = uploaded.training_data_url
        job = ftd.jobs.create(
            job_type=job_type,
            base_model=base_model or _base_model(ftd, job_type),
            training_data_url=url,
            output_model=output,
            gpu_provider=provider,
            hyperparameters=hyperparameters,
            project_id=project,
            worker_pool=pool,
        )
        if as_json and not watch:
            print_json(job)
        elif not as_json:
            console.print(f"Created job [bold]{job.id}[/] ({styled(job.status)}).")
            if job.waiting is not None:
                console.print(f"[dim]{job.waiting.message}[/]")
        if watch:
            raise typer.Exit(watch_job(job, as_json=as_json))


@app.command("list")
@api_command
def list_jobs(
    ctx: typer.Context,
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    job_type: Annotated[JobType | None, typer.Option("--type", "-t")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    cursor: Annotated[str | None, typer.Option(help="The next_cursor of a previous page.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List your jobs, newest first."""
    with client(ctx) as ftd:
        page = ftd.jobs.list(status=status, job_type=job_type, limit=limit, cursor=cursor)
    if as_json:
        print_json(
            {"data": [j.model_dump(mode="json") for j in page], "next_cursor": page.next_cursor}
        )
        return
    table = Table()
    for column in ("id", "type", "status", "progress", "output", "created"):
        table.add_column(column, overflow="fold")
    for job in page:
        table.add_row(
            str(job.id),
            job.job_type,
            styled(job.status),
            f"{job.progress:.0f}%",
            job.output_model,
            when(job.created_at),
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"[dim]More: ftd jobs list --cursor {page.next_cursor}[/]")


@app.command()
@api_command
def get(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: JsonOption = False,
) -> None:
    """Show one job."""
    with client(ctx) as ftd:
        job = ftd.jobs.get(job_id)
    if as_json:
        print_json(job)
    else:
        print_job(job)


@app.command()
@api_command
def cancel(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    as_json: JsonOption = False,
) -> None:
    """Cancel a pending or running job."""
    with client(ctx) as ftd:
        job = ftd.jobs.cancel(job_id)
    if as_json:
        print_json(job)
    else:
        console.print(f"Job [bold]{job.id}[/] is {styled(job.status)}.")


@app.command()
@api_command
def watch(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    timeout: Annotated[
        float | None, typer.Option(help="Give up after this many seconds (exit 1).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a job live (step, loss, ETA) until it ends. Exits 0 when it completed, 1 when it
    failed, 3 when it was cancelled. With --json, one JSON event per line, then the job."""
    with client(ctx) as ftd:
        job = ftd.jobs.get(job_id)
        raise typer.Exit(watch_job(job, as_json=as_json, timeout=timeout))
