"""The app builder: one FastAPI app per service, built the same way for every one of them.

`build_app(service, settings)` returns the app with
- a lifespan that builds the engine and its admission pools (servicekit.uow.Database), connects
  the broker and declares the topology, builds the service's state, starts its background work
  (the outbox relay, the event consumer and its inbox pruning, whatever else it runs), each
  supervised, and stops all of it cleanly; and tunes the garbage collector;
- the middleware in front of every route (servicekit.http, servicekit.access_log): the request
  id, the access log when enabled, the body limit, the JSON body check where the service takes
  JSON;
- one error mapping (servicekit.errors): the envelope for ApiError, DomainError, FastAPI's own
  errors, 503 `service_unavailable` for an outage, 500 for the rest;
- `/healthz` (liveness), `/readyz` (database and broker), `/metrics` (Prometheus) and `/docs`
  served from local files.
"""

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from messaging.broker import Broker
from messaging.topology import declare_topology
from servicekit.access_log import AccessLogMiddleware
from servicekit.background import (
    Background,
    inbox_pruning,
    outbox_relay,
    run_all,
    stop_all,
    supervised,
)
from servicekit.config import PlatformSettings
from servicekit.db import make_engine
from servicekit.docs import install_docs
from servicekit.errors import install_error_handlers
from servicekit.gctune import tune_gc
from servicekit.http import BodyLimitMiddleware, JsonBodyMiddleware, RequestIdMiddleware
from servicekit.service import Platform, S, Service
from servicekit.uow import Database, admission_pools

log = structlog.get_logger(__name__)

VERSION = "0.1.0"


def build_app(service: Service[S], settings: PlatformSettings) -> FastAPI:
    app = FastAPI(
        title=f"Finetune Dispatcher: {service.name}",
        version=VERSION,
        description=service.description,
        lifespan=lambda app: _lifespan(app, service, settings),
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    for kind, handler in service.error_handlers.items():
        app.add_exception_handler(kind, handler)
    install_docs(app)
    # Outermost last: the request id is bound before anything logs; oversized and non-JSON
    # bodies are refused before any route, dependency or authentication runs.
    if service.json_body_exempt is not None:
        app.add_middleware(JsonBodyMiddleware, exempt=service.json_body_exempt)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=service.max_body_bytes)
    if settings.access_log:
        app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestIdMiddleware)
    for router in service.routers:
        app.include_router(router)
    _install_probes(app)
    if service.openapi is not None:
        _amend_openapi(app, service.openapi)
    return app


async def _connect_broker(service: Service[Any], settings: PlatformSettings) -> Broker:
    broker = Broker(
        settings.amqp_url.get_secret_value(), settings.broker_names, client_name=service.name
    )
    await broker.connect()
    channel = await broker.channel()
    try:
        await declare_topology(channel, broker.names, service.queues(broker))
    finally:
        await channel.close()
    return broker


def _event_work(platform: Platform, service: Service[S], state: S) -> list[Background]:
    """The relay, the consumer and its inbox pruning, as the settings ask."""
    events, settings = service.events, platform.settings
    if events is None:
        return []
    work = []
    if settings.run_relay:
        platform.relay = outbox_relay(
            platform.broker, settings.database_url, events.outbox, events.outbox_channel
        )
        work.append(supervised("relay", platform.relay.run))
    if settings.run_consumers and events.consumer is not None:
        platform.consumer = events.consumer(platform, state)
        work.append(supervised("consumer", platform.consumer.run))
    if settings.run_consumers and events.inbox is not None:
        # Pruning is the consumer's housekeeping: its pool, where the service has one.
        begin = state.units.begin("consumer" if "consumer" in service.pools else "http")
        retention = timedelta(hours=settings.inbox_retention_hours)
        work.append(inbox_pruning(events.inbox, begin, retention))
    return work


@contextlib.asynccontextmanager
async def _lifespan(
    app: FastAPI, service: Service[S], settings: PlatformSettings
) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as running:
        pools = admission_pools(settings.db_pool_size, service.pools)
        engine = make_engine(
            settings.database_url,
            application_name=service.name,
            pool_size=sum(pools.values()),
            max_overflow=0,
        )
        db = Database(engine, pools)
        running.push_async_callback(db.dispose)
        broker = await _connect_broker(service, settings)
        running.push_async_callback(broker.close)
        platform = Platform(
            name=service.name,
            settings=settings,
            db=db,
            broker=broker,
            verifier=settings.verifier(),
            verify_in_loop=settings.verify_in_loop,
        )
        app.state.platform = platform
        state = await service.start(platform)
        app.state.service = state
        if service.stop is not None:
            running.push_async_callback(service.stop, state)
        events = _event_work(platform, service, state)
        # The service's own work may use the relay and the consumer just built (Service.background).
        work = [*events, *service.background(platform, state)]
        tasks = run_all(work)
        running.push_async_callback(stop_all, tasks)
        tune_gc(gen0_threshold=settings.gc_gen0_threshold)
        log.info(
            "service.started",
            service=service.name,
            environment=settings.environment,
            tasks=[t.get_name() for t in tasks],
            **service.describe(state),
        )
        yield


def _install_probes(app: FastAPI) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        platform: Platform | None = getattr(request.app.state, "platform", None)
        checks = {"database": False, "broker": False}
        if platform is not None:
            with contextlib.suppress(Exception):
                async with platform.db.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                checks["database"] = True
            checks["broker"] = not platform.broker.connection.is_closed
        ok = all(checks.values())
        return JSONResponse({"data": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _amend_openapi(app: FastAPI, amend: Any) -> None:
    """The generated document, amended once by the service (then cached like FastAPI's own)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            amend(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
