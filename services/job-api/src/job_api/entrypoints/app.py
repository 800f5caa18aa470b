"""job-api's app: its routes, its state, its events and its background work (servicekit.app
builds the rest: lifespan, middleware, error mapping, health, readiness, metrics, docs)."""

from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from contracts.catalogue import Catalogue
from job_api.adapters.broker_admin import BrokerAdmin, vhost_of, without_credentials
from job_api.adapters.tables import JOB_EVENTS_CHANNEL, OUTBOX_CHANNEL, outbox
from job_api.adapters.token_cipher import cipher_from
from job_api.config import Settings
from job_api.domain.errors import DomainError, IllegalTransition, InvalidJob, JobNotFound
from job_api.entrypoints import (
    routes_auth,
    routes_jobs,
    routes_namespaces,
    routes_openai_jobs,
    routes_stream,
    routes_worker,
    routes_workers,
)
from job_api.entrypoints.deps import AppState
from job_api.entrypoints.housekeeping import Retention, presence_step, retention_step
from job_api.entrypoints.live import LiveHub, StreamLimits
from job_api.entrypoints.schemas import job_create_schema
from job_api.entrypoints.worker_broker import declare_pools, reconcile
from job_api.entrypoints.workers import (
    BACKGROUND_POOLS,
    make_consumer,
    make_rpc_server,
    queue_specs,
    watchdog_step,
)
from job_api.service_layer.jobs import DatasetNotFound, DatasetNotReady, HyperparameterError
from job_api.service_layer.unit_of_work import Policy, UnitOfWork
from servicekit.app import build_app
from servicekit.background import Background, periodic, supervised
from servicekit.db import asyncpg_dsn
from servicekit.errors import error_body
from servicekit.openapi import document_body_errors
from servicekit.service import Events, Platform, Service
from servicekit.uow import Units

DESCRIPTION = (
    "Fine-tuning jobs: create, list, cancel, watch live; the worker endpoints of the brief."
)


def policy_from(settings: Settings) -> Policy:
    return Policy(
        catalogue=Catalogue(include_offline=settings.enable_offline_models),
        lease=settings.lease,
        max_attempts=settings.max_attempts,
        redispatch_after=timedelta(seconds=settings.redispatch_seconds),
        allow_external_data_urls=settings.external_data_urls,
        data_url_allowed_hosts=tuple(
            host.strip().lower()
            for host in settings.data_url_allowed_hosts.split(",")
            if host.strip()
        ),
        max_external_data_bytes=settings.max_external_data_bytes,
        data_ticket_secret=settings.ticket_secret(),
        public_base_url=settings.public_base_url.rstrip("/"),
        retry_backoff=timedelta(seconds=settings.retry_backoff_seconds),
        worker_online=timedelta(seconds=settings.worker_online_seconds),
        token_cipher=cipher_from(
            settings.secrets_key.get_secret_value() if settings.secrets_key else None,
            development_secret=(
                settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
            ),
        ),
        hf_endpoint=settings.hf_endpoint,
    )


def broker_admin_from(settings: Settings) -> BrokerAdmin | None:
    if settings.broker_management_url is None:
        return None
    return BrokerAdmin(
        url=settings.broker_management_url.get_secret_value(),
        vhost=vhost_of(settings.amqp_url.get_secret_value()),
        names=settings.broker_names,
    )


def worker_amqp_url(settings: Settings) -> str | None:
    """The broker URL enrolled workers are told (a cluster's: its URLs, comma-separated). Without
    the management API they share the configured URL's user, which only development may hand
    out; elsewhere they are told the URLs without credentials (a worker adds its own)."""
    if settings.worker_amqp_url is not None:
        return settings.worker_amqp_url
    url = settings.amqp_url.get_secret_value()
    if settings.broker_management_url is None and settings.environment == "development":
        return url
    return without_credentials(url, keep_query=False)


def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, JobNotFound | DatasetNotFound):
        return JSONResponse(error_body(exc.code, str(exc)), status_code=404)
    if isinstance(exc, InvalidJob):
        return JSONResponse(error_body(exc.code, str(exc), {"field": exc.field}), status_code=422)
    if isinstance(exc, DatasetNotReady):
        return JSONResponse(
            error_body(
                exc.code, str(exc), {"field": "training_data_url", "retry_after": exc.retry_after}
            ),
            status_code=exc.status,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, HyperparameterError):
        problems: list[dict[str, Any]] = [
            # The union's tag (the job type) leads each loc: drop it, it is not a field.
            {"loc": ["hyperparameters", *e["loc"][1:]], "message": e["msg"], "type": e["type"]}
            for e in exc.error.errors()
            if e["loc"] != ("job_type",)
        ]
        first = problems[0] if problems else {"loc": ["hyperparameters"], "message": "invalid"}
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse(
            error_body("invalid_hyperparameters", f"{where}: {first['message']}", problems),
            status_code=422,
        )
    assert isinstance(exc, DomainError)
    details: Any = None
    if isinstance(exc, IllegalTransition):
        details = {"status": str(exc.current), "requested": str(exc.target)}
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(
        error_body(exc.code, str(exc), details), status_code=exc.status, headers=headers
    )


def retention_from(settings: Settings) -> Retention:
    return Retention(
        history=timedelta(days=settings.events_retention_days),
        idempotency_keys=timedelta(hours=settings.idempotency_retention_hours),
        inbox=timedelta(hours=settings.inbox_retention_hours),
        batch=settings.retention_batch,
    )


def _openapi(settings: Settings) -> Any:
    """The generated document amended: the body errors the middleware answers, and the body of
    POST /jobs stated as the server checks it (the catalogue of base models per job type, the
    accepted data references)."""

    def amend(document: dict[str, Any]) -> None:
        document_body_errors(document)
        schemas = document["components"]["schemas"]
        schemas["FinetuneJobCreate"] = job_create_schema(
            schemas["FinetuneJobCreate"],
            Catalogue(include_offline=settings.enable_offline_models),
            allow_external_data_urls=settings.external_data_urls,
        )

    return amend


def _background(settings: Settings, platform: Platform, state: AppState) -> list[Background]:
    """The live hub, the claim server beside the consumer, and the watchdog's periodic work. The
    relay and the consumer (servicekit's) are built by now: the state hands new rows to the
    relay, and the watchdog waits for the consumer to catch up."""
    state.relay, state.consumer = platform.relay, platform.consumer
    work = [Background("live", state.live.run)]
    if settings.run_consumers:
        work.append(supervised("rpc", make_rpc_server(state, platform.broker).run))
    if settings.run_watchdog:
        caught_up = state.consumer.caught_up if state.consumer is not None else None
        inbox = timedelta(hours=settings.inbox_retention_hours)
        work += [
            periodic(
                "watchdog", settings.watchdog_interval, watchdog_step(state, inbox, caught_up)
            ),
            periodic(
                "retention",
                settings.retention_interval,
                retention_step(state, retention_from(settings)),
            ),
            periodic("presence", settings.presence_interval, presence_step(state)),
            periodic("broker_users", settings.presence_interval * 6, lambda: reconcile(state)),
        ]
    return work


def create_app(settings: Settings) -> FastAPI:
    async def start(platform: Platform) -> AppState:
        state = AppState(
            db=platform.db,
            policy=policy_from(settings),
            verifier=platform.verifier,
            verify_in_loop=platform.verify_in_loop,
            worker_key=settings.worker_key.get_secret_value() if settings.worker_key else "",
            live=LiveHub(
                asyncpg_dsn(settings.database_url),
                JOB_EVENTS_CHANNEL,
                *routes_stream.live_readers(Units(platform.db, UnitOfWork)),
            ),
            stream_limits=StreamLimits(settings.max_streams_per_user, settings.max_streams),
            shared_worker_key=settings.shared_worker_key,
            broker_admin=broker_admin_from(settings),
            worker_amqp_url=worker_amqp_url(settings),
            broker_prefix=settings.broker_prefix,
            worker_install=settings.worker_install,
            broker=platform.broker,
        )
        await declare_pools(state)
        return state

    service = Service(
        name="job-api",
        description=DESCRIPTION,
        # Literal paths (/jobs/pending, /jobs/stream) before /jobs/{job_id}.
        routers=[
            routes_worker.router,
            routes_stream.router,
            routes_jobs.router,
            routes_auth.router,
            routes_workers.router,
            routes_namespaces.router,
            routes_openai_jobs.router,
        ],
        start=start,
        max_body_bytes=settings.max_body_bytes,
        pools=BACKGROUND_POOLS,
        queues=queue_specs,
        # The inbox is pruned by the watchdog (its own pool), not beside the consumer.
        events=Events(outbox=outbox, outbox_channel=OUTBOX_CHANNEL, consumer=make_consumer),
        background=lambda platform, state: _background(settings, platform, state),
        json_body_exempt=(),
        error_handlers={DomainError: _domain_error, HyperparameterError: _domain_error},
        openapi=_openapi(settings),
    )
    app = build_app(service, settings)
    app.state.dev_sign_in = routes_auth.DevSignIn(
        secret=(
            settings.jwt_secret.get_secret_value()
            if settings.environment == "development"
            and settings.jwt_algorithm == "HS256"
            and settings.jwt_secret is not None
            else None
        ),
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    return app
