"""The FastAPI application: routes, error mapping, and a lifespan that builds the engine, the
broker connection and the background workers (never at import time)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from contracts.catalogue import Catalogue
from job_api.adapters.broker_admin import BrokerAdmin, vhost_of
from job_api.adapters.tables import JOB_EVENTS_CHANNEL, OUTBOX_CHANNEL
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
    every,
    make_consumer,
    make_relay,
    make_rpc_server,
    queue_specs,
    supervised,
    watchdog_step,
)
from job_api.service_layer.jobs import DatasetNotFound, DatasetNotReady, HyperparameterError
from job_api.service_layer.unit_of_work import Policy, UnitOfWork
from messaging.broker import Broker
from messaging.topology import declare_topology
from servicekit.access_log import AccessLogMiddleware
from servicekit.auth import JwtVerifier
from servicekit.db import asyncpg_dsn, make_engine
from servicekit.docs import install_docs
from servicekit.errors import error_body, install_error_handlers
from servicekit.gctune import tune_gc
from servicekit.http import BodyLimitMiddleware, JsonBodyMiddleware, RequestIdMiddleware
from servicekit.uow import Database, Units

log = structlog.get_logger(__name__)


def pool_sizes(total: int) -> dict[str, int]:
    """Split the engine's connections into admission pools so that no kind of work can take the
    connections another needs (the relay is not among them: it holds a connection of its own, as
    the stream hub's LISTEN does): the consumer, the claim server and the watchdog get one or two
    each; streams read in short bursts; HTTP requests get the rest."""
    background = {"consumer": 2, "rpc": 2, "watchdog": 1, "streams": 2}
    fixed = sum(background.values())
    if total < fixed + 1:
        # Small pools (tests): every kind still gets a slot of its own (the engine is sized to
        # the sum, so this may use a few more connections than asked for).
        return {**dict.fromkeys(background, 1), "http": max(1, total - len(background))}
    return {**background, "http": total - fixed}


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
    """The broker URL enrolled workers are told. Without the management API they share the
    configured URL's user, which only development may hand out."""
    if settings.worker_amqp_url is not None:
        return settings.worker_amqp_url
    url = settings.amqp_url.get_secret_value()
    if settings.broker_management_url is None and settings.environment == "development":
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit(
        (parts.scheme, f"{host}:{parts.port}" if parts.port else host, parts.path, "", "")
    )


def verifier_from(settings: Settings) -> JwtVerifier:
    return JwtVerifier(
        algorithm=settings.jwt_algorithm,
        secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        jwks_url=settings.jwks_url,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )


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


async def _stop(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the background tasks and wait for them. A cancellation can be lost (aio-pika's
    channel.close() swallows one; so does Python 3.11's wait_for when its awaitable finishes at
    the same moment), and the task then runs on: cancel again until every task has ended."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("job_api.task_failed", task=task.get_name(), error=repr(task.exception()))


def retention_from(settings: Settings) -> Retention:
    return Retention(
        history=timedelta(days=settings.events_retention_days),
        idempotency_keys=timedelta(hours=settings.idempotency_retention_hours),
        inbox=timedelta(hours=settings.inbox_retention_hours),
        batch=settings.retention_batch,
    )


def _document_body_errors(document: dict[str, Any]) -> None:
    """Operations that read a JSON body can also answer 400 (not JSON), 413 (too large) and
    415 (not declared as JSON): say so."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    reasons = {
        "400": "The body is not valid JSON (`invalid_json`).",
        "413": "The body is larger than this service accepts (`payload_too_large`).",
        "415": "The body is not declared as application/json (`unsupported_media_type`).",
    }
    for operations in document["paths"].values():
        for operation in operations.values():
            if "requestBody" in operation:
                for status, description in reasons.items():
                    operation["responses"].setdefault(
                        status, {"description": description, "content": error}
                    )


def _true_openapi(app: FastAPI, settings: Settings) -> None:
    """The generated document, with the body of POST /jobs stated as the server checks it (the
    catalogue of base models per job type, the accepted data references)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _document_body_errors(document)
            schemas = document["components"]["schemas"]
            schemas["FinetuneJobCreate"] = job_create_schema(
                schemas["FinetuneJobCreate"],
                Catalogue(include_offline=settings.enable_offline_models),
                allow_external_data_urls=settings.external_data_urls,
            )
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools = pool_sizes(settings.db_pool_size)
        engine = make_engine(
            settings.database_url,
            application_name="job-api",
            pool_size=sum(pools.values()),
            max_overflow=0,
        )
        listen_dsn = asyncpg_dsn(settings.database_url)
        db = Database(engine, pools)
        state = AppState(
            db=db,
            policy=policy_from(settings),
            verifier=verifier_from(settings),
            verify_in_loop=settings.jwt_algorithm == "HS256",
            worker_key=settings.worker_key.get_secret_value() if settings.worker_key else "",
            live=LiveHub(
                listen_dsn, JOB_EVENTS_CHANNEL, *routes_stream.live_readers(Units(db, UnitOfWork))
            ),
            stream_limits=StreamLimits(settings.max_streams_per_user, settings.max_streams),
            shared_worker_key=settings.shared_worker_key,
            broker_admin=broker_admin_from(settings),
            worker_amqp_url=worker_amqp_url(settings),
            broker_prefix=settings.broker_prefix,
            worker_install=settings.worker_install,
        )
        app.state.job_api = state
        broker = Broker(
            settings.amqp_url.get_secret_value(), settings.broker_names, client_name="job-api"
        )
        await broker.connect()
        channel = await broker.channel()
        await declare_topology(channel, broker.names, queue_specs(broker))
        await channel.close()
        state.broker = broker
        await declare_pools(state)
        tasks = [asyncio.create_task(state.live.run(), name="live")]
        if settings.run_relay:
            relay = state.relay = make_relay(broker, listen_dsn, OUTBOX_CHANNEL)
            tasks.append(asyncio.create_task(supervised("relay", relay.run), name="relay"))
        caught_up = None
        if settings.run_consumers:
            consumer = state.consumer = make_consumer(state, broker)
            caught_up = consumer.caught_up
            rpc = make_rpc_server(state, broker)
            tasks.append(asyncio.create_task(supervised("consumer", consumer.run), name="consumer"))
            tasks.append(asyncio.create_task(supervised("rpc", rpc.run), name="rpc"))
        if settings.run_watchdog:
            retention = timedelta(hours=settings.inbox_retention_hours)
            tasks.append(
                asyncio.create_task(
                    every(
                        settings.watchdog_interval,
                        "watchdog",
                        watchdog_step(state, retention, caught_up),
                    ),
                    name="watchdog",
                )
            )
            tasks.append(
                asyncio.create_task(
                    every(
                        settings.retention_interval,
                        "retention",
                        retention_step(state, retention_from(settings)),
                    ),
                    name="retention",
                )
            )
            tasks.append(
                asyncio.create_task(
                    every(settings.presence_interval, "presence", presence_step(state)),
                    name="presence",
                )
            )
            tasks.append(
                asyncio.create_task(
                    every(settings.presence_interval * 6, "broker_users", lambda: reconcile(state)),
                    name="broker_users",
                )
            )
        tune_gc(gen0_threshold=settings.gc_gen0_threshold)
        log.info(
            "job_api.started", environment=settings.environment, tasks=[t.get_name() for t in tasks]
        )
        try:
            yield
        finally:
            await _stop(tasks)
            await broker.close()
            await state.db.dispose()

    app = FastAPI(
        title="Finetune Dispatcher: job-api",
        version="0.1.0",
        description="Fine-tuning jobs: create, list, cancel, watch live; the worker endpoints of the brief.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_docs(app)
    # Outermost last: the request id is bound before anything logs; oversized and non-JSON
    # bodies are refused before any route, dependency or authentication runs.
    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    if settings.access_log:
        app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(HyperparameterError, _domain_error)
    # Literal paths (/jobs/pending, /jobs/stream) before /jobs/{job_id}.
    app.include_router(routes_worker.router)
    app.include_router(routes_stream.router)
    app.include_router(routes_jobs.router)
    app.include_router(routes_auth.router)
    app.include_router(routes_workers.router)
    app.include_router(routes_namespaces.router)
    app.include_router(routes_openai_jobs.router)
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
    _true_openapi(app, settings)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        state: AppState = request.app.state.job_api
        checks = {"database": False, "broker": False}
        with contextlib.suppress(Exception):
            async with state.db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = True
        checks["broker"] = state.broker is not None and not state.broker.connection.is_closed
        ok = all(checks.values())
        return JSONResponse({"data": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
