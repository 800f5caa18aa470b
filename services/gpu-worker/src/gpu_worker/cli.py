"""`ftd-worker`: run a GPU (or CPU) worker that dials out to the broker and trains jobs."""

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import aio_pika
import structlog
import typer
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from contracts.enums import GPUProvider, JobType
from contracts.routing import BrokerNames
from gpu_worker import hardware
from gpu_worker.config import WorkerSettings
from gpu_worker.console import LogDisplay, RichDisplay
from gpu_worker.logs import configure_logging
from gpu_worker.runtime.download import ExternalData
from gpu_worker.runtime.job import Display, JobSettings, Toolkit
from gpu_worker.runtime.link import BrokerLink, certificate_problem, tls_context
from gpu_worker.runtime.loop import Worker

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


def build_link(settings: WorkerSettings, job_types: list[JobType]) -> BrokerLink:
    url = settings.amqp_url.get_secret_value()
    context = None
    if url.startswith("amqps://"):
        context = tls_context(
            ca_file=settings.ca_file, cert_file=settings.cert_file, key_file=settings.key_file
        )
    return BrokerLink(
        url,
        BrokerNames(settings.broker_prefix),
        worker_id=settings.worker_id,
        provider=settings.provider,
        job_types=job_types,
        ssl_context=context,
    )


async def connect(link: BrokerLink, *, within: float) -> None:
    """The first connection, retried: a worker may start before the broker (or job-api, which
    declares the queues) is up. Later losses are the robust connection's to repair. A refused
    broker certificate is a configuration error: it is raised at once."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(within),
        retry=retry_if_exception(lambda exc: certificate_problem(exc) is None),
        wait=wait_exponential(multiplier=0.5, max=10),
        reraise=True,
    ):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                log.info("broker.connect_retry", try_number=attempt.retry_state.attempt_number)
            try:
                await link.connect()
            except Exception as exc:
                log.warning("broker.connect_failed", error=repr(exc)[:300])
                await link.close(flush_timeout=0)
                raise


async def serve(
    settings: WorkerSettings, job_types: list[JobType], toolkit: Toolkit, display: Display
) -> int:
    """Run until SIGTERM/SIGINT (or max_jobs); returns the exit status."""
    link = build_link(settings, job_types)
    await connect(link, within=settings.connect_timeout)
    worker = Worker(
        link,
        toolkit=toolkit,
        settings=JobSettings(
            worker_id=settings.worker_id,
            work_dir=settings.work_dir,
            progress_interval=settings.progress_interval,
            stop_grace=settings.stop_grace,
            checkpoint_sync_interval=settings.checkpoint_sync_interval,
            external_data=ExternalData(allowed_hosts=settings.allowed_data_hosts),
        ),
        display=display,
        claim_timeout=settings.claim_timeout,
        max_jobs=settings.max_jobs,
    )
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1 and worker.current is not None:
            # A second Ctrl-C: the person does not want to wait for the checkpoint. The lease
            # watchdog requeues the job.
            log.warning("worker.forced_exit", job_id=worker.current.job_id)
            os._exit(130)
        worker.request_shutdown()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await worker.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        # The last reports (a hand-back after SIGTERM) must reach the broker before we exit.
        await link.close(flush_timeout=30)
    log.info("worker.stopped", jobs=len(worker.outcomes))
    return 0


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
        bool, typer.Option(help="Take llm_lora jobs without a CUDA GPU (tiny models, tests).")
    ] = False,
    worker_id: Annotated[str | None, typer.Option(help="Default: host name + random.")] = None,
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
        worker_id=worker_id,
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
    try:
        types = hardware.choose_job_types(settings.job_types, found, force=force_job_types)
    except ValueError as exc:
        typer.echo(f"ftd-worker: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(json=settings.json_logs, level=settings.log_level)
    log.info(
        "worker.starting",
        worker_id=settings.worker_id,
        provider=str(settings.provider),
        hardware=found.describe(),
        job_types=[str(t) for t in types],
    )
    from gpu_worker.toolkit import real_toolkit

    toolkit = real_toolkit(settings)
    use_console = settings.console if settings.console is not None else sys.stdout.isatty()
    with contextlib.ExitStack() as stack:
        display: Display = stack.enter_context(RichDisplay()) if use_console else LogDisplay()
        try:
            status = asyncio.run(serve(settings, types, toolkit, display))
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
    typer.echo(f"job types: {', '.join(hardware.default_job_types(found))}")
