"""model-server's app: its routes, its state (the model pool and its reconciler), its consumers
(servicekit.app builds the rest: lifespan, middleware, error mapping, health, readiness, metrics,
docs). `/v1/` errors are rewritten into OpenAI's shape by an outer middleware."""

from collections.abc import Iterable
from datetime import timedelta

from aio_pika.abc import AbstractChannel
from fastapi import FastAPI

from model_server.adapters.engines import passive_openmp
from model_server.adapters.loaders import LocalLoaders
from model_server.config import Settings
from model_server.domain.deployments import Deployment
from model_server.entrypoints import routes_keys, routes_v1
from model_server.entrypoints.deps import AppState
from model_server.entrypoints.openai_errors import OpenAIErrorMiddleware
from model_server.entrypoints.workers import (
    SHARED_INBOX,
    declare_replica_queue,
    queue_specs,
    replica_consumer,
    replica_inbox,
    replica_name,
    shared_consumer,
)
from model_server.service_layer.keys import KeyCache
from model_server.service_layer.serving import ModelPool, Reconciler
from model_server.service_layer.unit_of_work import UnitOfWork
from servicekit.app import build_app
from servicekit.background import Background, inbox_pruning, supervised
from servicekit.service import Platform, Service
from servicekit.uow import Units

# The same limit as job-api's JSON routes: room for a batch of 2048 short texts.
MAX_BODY_BYTES = 1 << 20


def create_app(settings: Settings) -> FastAPI:
    passive_openmp()  # before any model load imports torch
    channels: list[AbstractChannel] = []

    async def start(platform: Platform) -> AppState:
        units = Units(platform.db, UnitOfWork)
        pool = ModelPool(LocalLoaders(settings), max_batch_texts=settings.max_batch_texts)

        async def read_live() -> list[Deployment]:
            async with units.reading("consumer") as uow:
                return await uow.deployments.live()

        replica = replica_name(settings.replica_id)
        channels.append(await declare_replica_queue(platform.broker, replica))
        reconciler = Reconciler(pool, read_live, interval=settings.reconcile_seconds)
        keys = KeyCache(units.reading, ttl=settings.api_key_cache_seconds)
        return AppState(units=units, pool=pool, reconciler=reconciler, replica=replica, keys=keys)

    async def stop(state: AppState) -> None:
        for channel in channels:
            await channel.close()
        await state.pool.close()

    def background(platform: Platform, state: AppState) -> Iterable[Background]:
        # The reconciler loads what is deployed at start, then follows the events.
        work = [supervised("reconciler", state.reconciler.run)]
        if platform.settings.run_consumers:
            retention = settings.inbox_retention_hours
            begin = state.units.begin("consumer")
            work += [
                supervised("consumer", shared_consumer(platform, state).run),
                supervised("replica_consumer", replica_consumer(platform, state).run),
                inbox_pruning(SHARED_INBOX, begin, timedelta(hours=retention)),
                inbox_pruning(replica_inbox(state.replica), begin, timedelta(hours=retention)),
            ]
        return work

    service = Service(
        name="model-server",
        description=(
            "Serves deployed models over an OpenAI-style API: embeddings, classification, and "
            "chat and text completions of LoRA adapters; users' API keys for it."
        ),
        routers=[routes_v1.router, routes_keys.router],
        start=start,
        stop=stop,
        max_body_bytes=MAX_BODY_BYTES,
        json_body_exempt=(),
        pools={"consumer": 2},
        queues=queue_specs,
        background=background,
        describe=lambda state: {"replica": state.replica, "lora_backend": settings.lora_backend},
    )
    app = build_app(service, settings)
    app.add_middleware(OpenAIErrorMiddleware)
    return app
