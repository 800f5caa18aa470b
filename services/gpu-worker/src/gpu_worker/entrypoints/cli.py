"""`ftd-worker`: run a GPU (or CPU) worker that dials out to the broker and trains jobs."""

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import aio_pika
import structlog
import typer
from pydantic import ValidationError

from contracts.catalogue import satisfied_classes
from contracts.credentials import parse_token
from contracts.enums import GPUProvider, JobType
from contracts.routing import SHARED_POOL
from gpu_worker.adapters import hardware
from gpu_worker.adapters.enrolment import (
    CredentialRefused,
    PlatformUnreachable,
    load_credentials,
    save_credentials,
    who_am_i,
)
from gpu_worker.config import WorkerSettings, credentials_file
from gpu_worker.entrypoints.console import LogDisplay, RichDisplay
from gpu_worker.entrypoints.logs import configure_logging
from gpu_worker.entrypoints.supervisor import serve
from gpu_worker.service_layer.ports import Display
from workerlink.tls import certificate_problem

app = typer.Typer(help="Finetune Dispatcher GPU worker.", no_args_is_help=True)
log = structlog.get_logger(__name__)


def load_settings(**overrides: Any) -> WorkerSettings:
    try:
        return WorkerSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        typer.echo(f"ftd-worker: invalid configuration: {problems}", err=True)
        raise typer.Exit(2) from None


def resolve_token(settings: WorkerSettings, api_url: str | None) -> tuple[str, str]:
    """(token, api url): from the options/environment, else from `ftd-worker login`'s file."""
    saved = load_credentials(credentials_file())
    token = settings.token.get_secret_value() if settings.token else None
    if token is None and settings.token_file is not None:
        try:
            token = settings.token_file.read_text().strip()
        except OSError as exc:
            typer.echo(f"ftd-worker: cannot read FTD_WORKER_TOKEN_FILE: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
    if token is None and saved:
        token = saved[1]
    if not token:
        typer.echo(
            "ftd-worker: no worker token: enroll the worker (Workers page, or POST /api/workers), "
            "then `ftd-worker login` or set FTD_WORKER_TOKEN",
            err=True,
        )
        raise typer.Exit(2)
    if parse_token(token) is None:
        typer.echo("ftd-worker: FTD_WORKER_TOKEN is not a worker token (ftdw_...)", err=True)
        raise typer.Exit(2)
    from_login = saved is not None and token == saved[1] and saved[0]
    url = api_url or (saved[0] if saved and from_login else settings.api_url)
    return token, url


@app.command()
def login(
    token: Annotated[
        str | None,
        typer.Option(help="The token from Add a worker (asked for when not given)."),
    ] = None,
    api_url: Annotated[str | None, typer.Option(help="The platform's URL.")] = None,
) -> None:
    """Check a worker token with the platform and keep it (~/.config/ftd-worker, mode 0600), so
    `ftd-worker run` needs no token in its environment or command line."""
    value = token or typer.prompt("Worker token", hide_input=True)
    url = api_url or WorkerSettings().api_url
    try:
        me = asyncio.run(who_am_i(url, value))
    except (CredentialRefused, PlatformUnreachable) as exc:
        typer.echo(f"ftd-worker: {exc}", err=True)
        raise typer.Exit(1) from None
    save_credentials(credentials_file(), api_url=url, token=value)
    pool = "the shared pool" if me.pool == SHARED_POOL else "your private pool"
    typer.echo(f"Logged in as worker {me.name} ({me.worker_id}) in {pool}.")


@app.command()
def run(
    amqp_url: Annotated[
        str | None, typer.Option(help="Broker URL, amqp:// or amqps:// [env FTD_AMQP_URL].")
    ] = None,
    provider: Annotated[
        GPUProvider | None, typer.Option(help="The provider whose jobs to take (default local).")
    ] = None,
    job_type: Annotated[
        list[JobType] | None,
        typer.Option("--job-type", help="Repeat to take several; default: what the hardware runs."),
    ] = None,
    force_job_types: Annotated[
        bool,
        typer.Option(
            help="Take every hardware class of the job types (a 7B LLM's too) whatever this "
            "machine's GPU: tests, or a GPU the detection misses."
        ),
    ] = False,
    api_url: Annotated[
        str | None, typer.Option(help="The platform's URL [env FTD_API_URL].")
    ] = None,
    broker_prefix: Annotated[str | None, typer.Option(help="Topology name prefix.")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA of the broker's certificate.")] = None,
    cert_file: Annotated[Path | None, typer.Option(help="Client certificate (amqps).")] = None,
    key_file: Annotated[Path | None, typer.Option(help="Client certificate key.")] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Scratch space for data and models.")
    ] = None,
    model_store_dir: Annotated[
        Path | None, typer.Option(help="Local model store (used without an HF token).")
    ] = None,
    max_jobs: Annotated[int | None, typer.Option(help="Exit after this many jobs.")] = None,
    console: Annotated[
        bool | None, typer.Option("--console/--no-console", help="Progress bars.")
    ] = None,
    json_logs: Annotated[bool | None, typer.Option("--json-logs", help="JSON log lines.")] = None,
) -> None:
    """Connect to the broker and train jobs until stopped (SIGTERM hands the running job back)."""
    settings = load_settings(
        amqp_url=amqp_url,
        provider=provider,
        job_types=job_type or None,
        broker_prefix=broker_prefix,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        work_dir=work_dir,
        model_store_dir=model_store_dir,
        max_jobs=max_jobs,
        console=console,
        json_logs=json_logs,
    )
    found = hardware.detect()
    types = hardware.choose_job_types(settings.job_types)
    gpu_gb = hardware.advertised_gpu_memory(found, force=force_job_types)
    configure_logging(json=settings.json_logs, level=settings.log_level)
    token, platform = resolve_token(settings, api_url)
    log.info(
        "worker.starting",
        api_url=platform,
        provider=str(settings.provider),
        hardware=found.describe(),
        job_types=[str(t) for t in types],
        hardware_classes=[str(c) for c in satisfied_classes(gpu_gb)],
    )
    from gpu_worker.entrypoints.toolkit import real_toolkit

    toolkit = real_toolkit(settings)
    use_console = settings.console if settings.console is not None else sys.stdout.isatty()
    with contextlib.ExitStack() as stack:
        display: Display = stack.enter_context(RichDisplay()) if use_console else LogDisplay()
        try:
            status = asyncio.run(
                serve(
                    settings,
                    types,
                    toolkit,
                    display,
                    token=token,
                    api_url=platform,
                    hardware_text=found.describe(),
                    gpu_memory_gb=gpu_gb,
                )
            )
        except (ConnectionError, OSError, aio_pika.exceptions.AMQPException) as exc:
            # The first connection never came up (wrong URL or credentials, job-api not set up).
            refused = certificate_problem(exc)
            if refused is not None:
                typer.echo(
                    "ftd-worker: the broker's TLS certificate was refused "
                    f"({refused.verify_message or refused.reason}): pass the CA that signed it with --ca-file "
                    "(FTD_WORKER_CA_FILE) and use the host name the certificate names in the URL",
                    err=True,
                )
            else:
                typer.echo(f"ftd-worker: cannot use the broker: {exc}", err=True)
            raise typer.Exit(1) from None
    raise typer.Exit(status)


@app.command("hardware")
def show_hardware() -> None:
    """Show what this machine can train (and so which job types the worker takes by default)."""
    found = hardware.detect()
    typer.echo(f"hardware:  {found.describe()}")
    typer.echo(f"job types: {', '.join(hardware.default_job_types())}")
    typer.echo(f"classes:   {', '.join(found.classes())} (of the base models' hardware classes)")
