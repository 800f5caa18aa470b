"""The FastAPI application and its lifespan (engine, storage, broker, relay and consumer are built
here, never at import time)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from minio import Minio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from data_service.adapters.storage import LocalStorage, S3Storage
from data_service.adapters.tables import OUTBOX_CHANNEL
from data_service.config import Settings
from data_service.domain.errors import DatasetInUse, DatasetNotFound, DomainError
from data_service.entrypoints import routes_datasets, routes_upload
from data_service.entrypoints.deps import AppState
from data_service.entrypoints.workers import (
    make_consumer,
    make_relay,
    prune_inbox,
    queue_specs,
    supervised,
)
from messaging.broker import Broker
from messaging.topology import declare_topology
from servicekit.access_log import AccessLogMiddleware
from servicekit.auth import JwtVerifier
from servicekit.db import asyncpg_dsn, make_engine
from servicekit.errors import error_body, install_error_handlers
from servicekit.gctune import tune_gc
from servicekit.uow import Database

log = structlog.get_logger(__name__)


def pool_sizes(total: int) -> dict[str, int]:
    # The relay holds a connection of its own, outside the engine's pool.
    background = {"consumer": 1}
    return {**background, "http": max(1, total - sum(background.values()))}


def verifier_from(settings: Settings) -> JwtVerifier:
    return JwtVerifier(
        algorithm=settings.jwt_algorithm,
        secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
        jwks_url=settings.jwks_url,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )


def storage_from(settings: Settings) -> LocalStorage | S3Storage:
    if settings.storage_backend == "local":
        return LocalStorage(settings.storage_dir, direct_io=settings.storage_direct_io)
    assert settings.s3_access_key is not None
    assert settings.s3_secret_key is not None
    credentials = {
        "access_key": settings.s3_access_key.get_secret_value(),
        "secret_key": settings.s3_secret_key.get_secret_value(),
        "secure": settings.s3_secure,
        "region": settings.s3_region,
    }
    client = Minio(settings.s3_endpoint, **credentials)  # type: ignore[arg-type]
    presign = None
    if settings.s3_public_endpoint:
        presign = Minio(settings.s3_public_endpoint, **credentials)  # type: ignore[arg-type]
    return S3Storage(client, settings.s3_bucket, presign)


def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DatasetNotFound):
        return JSONResponse(error_body(exc.code, str(exc)), status_code=404)
    if isinstance(exc, DatasetInUse):
        details = {"jobs": [str(j) for j in exc.jobs]}
        return JSONResponse(error_body(exc.code, str(exc), details), status_code=409)
    assert isinstance(exc, DomainError)
    return JSONResponse(error_body(exc.code, str(exc)), status_code=409)


async def _stop(tasks: list[asyncio.Task[Any]]) -> None:
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
            application_name="data-service",
            pool_size=sum(pools.values()),
            max_overflow=0,
        )
        storage = storage_from(settings)
        if isinstance(storage, S3Storage):
            await asyncio.to_thread(storage.ensure_bucket)
        else:
            swept = await asyncio.to_thread(storage.sweep_incoming)
            if swept:
                log.info("storage.swept_incoming", files=swept)
        state = AppState(
            db=Database(engine, pools),
            settings=settings,
            storage=storage,
            verifier=verifier_from(settings),
            ticket_secret=settings.ticket_secret(),
            verify_in_loop=settings.jwt_algorithm == "HS256",
        )
        app.state.data_service = state
        broker = Broker(
            settings.amqp_url.get_secret_value(), settings.broker_names, client_name="data-service"
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
            tasks.append(asyncio.create_task(prune_inbox(state, retention), name="inbox-prune"))
        tune_gc(gen0_threshold=settings.gc_gen0_threshold)
        log.info(
            "data_service.started",
            environment=settings.environment,
            storage=storage.kind,
            tasks=[t.get_name() for t in tasks],
        )
        try:
            yield
        finally:
            await _stop(tasks)
            await broker.close()
            await state.db.dispose()

    app = FastAPI(
        title="Finetune Dispatcher: data-service",
        version="0.1.0",
        description="Training data: streaming upload, validation and stats, storage, downloads for workers.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    if settings.access_log:
        app.add_middleware(AccessLogMiddleware)
    app.add_exception_handler(DomainError, _domain_error)
    app.include_router(routes_upload.router)
    app.include_router(routes_datasets.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        state: AppState = request.app.state.data_service
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
