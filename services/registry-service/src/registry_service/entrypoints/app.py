"""The FastAPI application: routes, error mapping, and a lifespan that builds the database, the
broker connection and the background workers (never at import time)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from messaging.broker import Broker
from messaging.topology import declare_topology
from registry_service.adapters.hub import HubClient
from registry_service.adapters.tables import OUTBOX_CHANNEL
from registry_service.config import Settings
from registry_service.domain.errors import (
    DomainError,
    IllegalTransition,
    ModelNotFound,
    RepoDeletionRefused,
)
from registry_service.entrypoints import routes_models
from registry_service.entrypoints.deps import AppState
from registry_service.entrypoints.workers import (
    make_consumer,
    make_relay,
    prune_inbox,
    queue_specs,
    supervised,
)
from registry_service.service_layer.litellm import Endpoints
from servicekit.access_log import AccessLogMiddleware
from servicekit.auth import JwtVerifier
from servicekit.db import asyncpg_dsn, make_engine
from servicekit.errors import error_body, install_error_handlers
from servicekit.gctune import tune_gc
from servicekit.uow import Database

log = structlog.get_logger(__name__)


def pool_sizes(total: int) -> dict[str, int]:
    """Admission pools: the consumer keeps its connections whatever HTTP does (the relay holds
    a connection of its own, outside the engine's pool)."""
    background = {"consumer": 2}
    return {**background, "http": max(1, total - sum(background.values()))}


def verifier_from(settings: Settings) -> JwtVerifier:
    return JwtVerifier(
        algorithm=settings.jwt_algorithm,
        secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        jwks_url=settings.jwks_url,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )


def endpoints_from(settings: Settings) -> Endpoints:
    return Endpoints(
        lora_base_url=settings.lora_base_url.rstrip("/"),
        serve_base_url=settings.serve_base_url.rstrip("/"),
        lora_api_key_env=settings.lora_api_key_env or None,
        serve_api_key_env=settings.serve_api_key_env or None,
    )


def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ModelNotFound):
        return JSONResponse(error_body(exc.code, str(exc)), status_code=404)
    if isinstance(exc, RepoDeletionRefused):
        return JSONResponse(error_body(exc.code, str(exc)), status_code=exc.status)
    assert isinstance(exc, DomainError)
    details: Any = None
    if isinstance(exc, IllegalTransition):
        details = {"status": exc.current, "requested": exc.target}
    return JSONResponse(error_body(exc.code, str(exc), details), status_code=409)


async def _stop(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the background tasks and wait until every one has ended (a cancellation can be
    swallowed by aio-pika's channel.close(), so cancel again while any is left)."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1)


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools = pool_sizes(settings.db_pool_size)
        engine = make_engine(
            settings.database_url,
            application_name="registry-service",
            pool_size=sum(pools.values()),
            max_overflow=0,
        )
        hub = (
            HubClient(settings.hf_token.get_secret_value(), endpoint=settings.hf_endpoint)
            if settings.hf_token is not None
            else None
        )
        state = AppState(
            db=Database(engine, pools),
            verifier=verifier_from(settings),
            endpoints=endpoints_from(settings),
            hub=hub,
            verify_in_loop=settings.jwt_algorithm == "HS256",
        )
        app.state.registry = state
        broker = Broker(
            settings.amqp_url.get_secret_value(),
            settings.broker_names,
            client_name="registry-service",
        )
        await broker.connect()
        channel = await broker.channel()
        await declare_topology(channel, broker.names, queue_specs(broker))
        await channel.close()
        state.broker = broker
        tasks: list[asyncio.Task[Any]] = []
        if settings.run_relay:
            relay = make_relay(broker, asyncpg_dsn(settings.database_url), OUTBOX_CHANNEL)
            tasks.append(asyncio.create_task(supervised("relay", relay.run), name="relay"))
        if settings.run_consumers:
            consumer = make_consumer(state, broker)
            tasks.append(asyncio.create_task(supervised("consumer", consumer.run), name="consumer"))
            retention = timedelta(hours=settings.inbox_retention_hours)
            tasks.append(asyncio.create_task(prune_inbox(state, retention), name="prune"))
        tune_gc(gen0_threshold=settings.gc_gen0_threshold)
        log.info(
            "registry.started",
            environment=settings.environment,
            tasks=[t.get_name() for t in tasks],
            hub_deletion=hub is not None,
        )
        try:
            yield
        finally:
            await _stop(tasks)
            await broker.close()
            await state.db.dispose()

    app = FastAPI(
        title="Finetune Dispatcher: registry-service",
        version="0.1.0",
        description=(
            "Trained models: one version per completed job, deploy/undeploy, delete, and a "
            "LiteLLM configuration for the deployed ones."
        ),
        lifespan=lifespan,
    )
    install_error_handlers(app)
    if settings.access_log:
        app.add_middleware(AccessLogMiddleware)
    app.add_exception_handler(DomainError, _domain_error)
    app.include_router(routes_models.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        state: AppState = request.app.state.registry
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
