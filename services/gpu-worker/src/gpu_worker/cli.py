"""`ftd-worker`: run a GPU (or CPU) worker that dials out to the broker and trains jobs."""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import aio_pika
import structlog
import typer
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from contracts.credentials import parse_token
from contracts.enums import GPUProvider, JobType
from contracts.routing import SHARED_POOL, BrokerNames
from gpu_worker import __version__, hardware
from gpu_worker.config import WorkerSettings, credentials_file
from gpu_worker.console import LogDisplay, RichDisplay
from gpu_worker.enrolment import (
    CredentialRefused,
    Enrolment,
    NoBrokerUrl,
    PlatformUnreachable,
    broker_url,
    load_credentials,
    save_credentials,
    who_am_i,
)
from gpu_worker.logs import configure_logging
from gpu_worker.runtime.download import ExternalData, trusting
from gpu_worker.runtime.job import Display, JobSettings, Toolkit
from gpu_worker.runtime.loop import Worker
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink
from workerlink.tls import certificate_problem, tls_context

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


def build_link(
    settings: WorkerSettings,
    job_types: list[JobType],
    *,
    identity: WorkerIdentity,
    url: str,
    prefix: str,
    hardware_text: str | None = None,
) -> BrokerLink:
    context = None
    if url.startswith("amqps://"):
        context = tls_context(
            ca_file=settings.ca_file, cert_file=settings.cert_file, key_file=settings.key_file
        )
    return BrokerLink(
        url,
        BrokerNames(prefix),
        identity=identity,
        provider=settings.provider,
        job_types=job_types,
        ssl_context=context,
        heartbeat_interval=settings.heartbeat_interval,
        hardware=hardware_text,
        version=__version__,
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


async def enrolment(settings: WorkerSettings, token: str, api_url: str) -> Enrolment:
    """Who we are, asked of the platform; retried while it does not answer (it may start after
    us), never when it refuses the token."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(settings.connect_timeout),
        retry=retry_if_exception_type(PlatformUnreachable),
        wait=wait_exponential(multiplier=0.5, max=10),
        reraise=True,
    ):
        with attempt:
            return await who_am_i(api_url, token)
    raise AssertionError("unreachable")


class Revoked(Exception):
    """The platform revoked this worker's credential."""


async def serve_once(
    settings: WorkerSettings,
    job_types: list[JobType],
    toolkit: Toolkit,
    display: Display,
    worker: "Worker | None",
    *,
    token: str,
    api_url: str,
    hardware_text: str,
    on_worker: "Callable[[Worker], None]",
) -> int:
    """One life of the worker: ask who we are, connect, take jobs until stopped."""
    me = await enrolment(settings, token, api_url)
    identity = WorkerIdentity.of(token, me.pool)
    override = settings.amqp_url.get_secret_value() if settings.amqp_url else None
    link = build_link(
        settings,
        job_types,
        identity=identity,
        url=broker_url(me, token, override=override),
        prefix=settings.broker_prefix or me.broker_prefix,
        hardware_text=hardware_text,
    )
    await connect(link, within=settings.connect_timeout)
    current = Worker(
        link,
        toolkit=toolkit,
        settings=JobSettings(
            worker_id=identity.worker_id,
            work_dir=settings.work_dir,
            progress_interval=settings.progress_interval,
            stop_grace=settings.stop_grace,
            checkpoint_sync_interval=settings.checkpoint_sync_interval,
            external_data=ExternalData(
                allowed_hosts=settings.allowed_data_hosts, verify=trusting(settings.data_ca_file)
            ),
            download_retry_seconds=settings.download_retry_seconds,
            publish_retry_seconds=settings.publish_retry_seconds,
        ),
        display=display,
        claim_timeout=settings.claim_timeout,
        max_jobs=settings.max_jobs,
    )
    if worker is not None and worker.stopping:
        current.request_shutdown()
    on_worker(current)
    try:
        await current.run()
    finally:
        # The last reports (a hand-back after SIGTERM) must reach the broker before we exit.
        await link.close(flush_timeout=30)
    if current.revoked:
        raise Revoked("the platform revoked this worker's credential")
    log.info("worker.stopped", jobs=len(current.outcomes))
    return 0


async def serve(
    settings: WorkerSettings,
    job_types: list[JobType],
    toolkit: Toolkit,
    display: Display,
    *,
    token: str,
    api_url: str,
    hardware_text: str = "",
) -> int:
    """Run until SIGTERM/SIGINT (or max_jobs); returns the exit status. With `supervise` (the
    default), an unexpected failure starts the worker again after a back-off instead of ending
    the process: a worker on a machine nobody watches must outlive what goes wrong around it."""
    loop = asyncio.get_running_loop()
    signals_seen = 0
    current: Worker | None = None

    def adopt(worker: Worker) -> None:
        nonlocal current
        current = worker

    def on_signal() -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1 and current is not None and current.current is not None:
            # A second Ctrl-C: the person does not want to wait for the checkpoint. The lease
            # watchdog requeues the job.
            log.warning("worker.forced_exit", job_id=current.current.job_id)
            os._exit(130)
        if current is not None:
            current.request_shutdown()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    delay = 1.0
    try:
        while True:
            try:
                return await serve_once(
                    settings,
                    job_types,
                    toolkit,
                    display,
                    current,
                    token=token,
                    api_url=api_url,
                    hardware_text=hardware_text,
                    on_worker=adopt,
                )
            except (CredentialRefused, Revoked) as exc:
                log.error("worker.credential_refused", detail=str(exc))
                return 3
            except NoBrokerUrl as exc:
                log.error("worker.misconfigured", detail=str(exc))
                return 2
            except Exception as exc:
                if not settings.supervise or signals_seen or certificate_problem(exc):
                    raise
                log.exception("worker.crashed", restart_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


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
        bool, typer.Option(help="Take llm_lora jobs without a CUDA GPU (tiny models, tests).")
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
    try:
        types = hardware.choose_job_types(settings.job_types, found, force=force_job_types)
    except ValueError as exc:
        typer.echo(f"ftd-worker: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(json=settings.json_logs, level=settings.log_level)
    token, platform = resolve_token(settings, api_url)
    log.info(
        "worker.starting",
        api_url=platform,
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
            status = asyncio.run(
                serve(
                    settings,
                    types,
                    toolkit,
                    display,
                    token=token,
                    api_url=platform,
                    hardware_text=found.describe(),
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
    typer.echo(f"job types: {', '.join(hardware.default_job_types(found))}")
