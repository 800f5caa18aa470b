"""One life of `ftd-worker run` and the supervisor around it: ask the platform who we are, dial
the broker as this worker's own user, take jobs until stopped; start again after an unexpected
failure, end on a refused credential or a configuration error."""

import asyncio
import os
import signal
from collections.abc import Callable

import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from contracts.enums import JobType
from contracts.routing import BrokerNames
from gpu_worker import __version__
from gpu_worker.adapters.enrolment import (
    CredentialRefused,
    Enrolment,
    NoBrokerUrl,
    PlatformUnreachable,
    broker_url,
    who_am_i,
)
from gpu_worker.config import WorkerSettings
from gpu_worker.service_layer.attempt import JobSettings
from gpu_worker.service_layer.loop import Worker
from gpu_worker.service_layer.ports import Display, Toolkit
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink, Offer
from workerlink.tls import certificate_problem, tls_context

log = structlog.get_logger(__name__)


def build_link(
    settings: WorkerSettings,
    job_types: list[JobType],
    *,
    identity: WorkerIdentity,
    url: str,
    prefix: str,
    hardware_text: str | None = None,
    gpu_memory_gb: int | None = None,
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
        gpu_memory_gb=gpu_memory_gb,
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
    worker: Worker[Offer] | None,
    *,
    token: str,
    api_url: str,
    hardware_text: str,
    on_worker: Callable[[Worker[Offer]], None],
    gpu_memory_gb: int | None = None,
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
        gpu_memory_gb=gpu_memory_gb,
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
    gpu_memory_gb: int | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or max_jobs); returns the exit status. With `supervise` (the
    default), an unexpected failure starts the worker again after a back-off instead of ending
    the process: a worker on a machine nobody watches must outlive what goes wrong around it."""
    loop = asyncio.get_running_loop()
    signals_seen = 0
    current: Worker[Offer] | None = None

    def adopt(worker: Worker[Offer]) -> None:
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
                    gpu_memory_gb=gpu_memory_gb,
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
