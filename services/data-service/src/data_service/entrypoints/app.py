"""data-service's app: its routes, its state, its events (servicekit.app builds the rest:
lifespan, middleware, error mapping, health, readiness, metrics, docs)."""

import asyncio

import structlog
from fastapi import FastAPI
from minio import Minio

from data_service.adapters.storage import LocalStorage, S3Storage, remove_files
from data_service.config import Settings
from data_service.entrypoints import routes_datasets, routes_openai_files, routes_upload
from data_service.entrypoints.deps import AppState
from data_service.entrypoints.workers import EVENTS, queue_specs
from data_service.service_layer.unit_of_work import UnitOfWork
from servicekit.app import build_app
from servicekit.service import Platform, Service
from servicekit.uow import Units

log = structlog.get_logger(__name__)


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


async def _ready_storage(settings: Settings) -> LocalStorage | S3Storage:
    storage = storage_from(settings)
    if isinstance(storage, S3Storage):
        await asyncio.to_thread(storage.ensure_bucket)
    else:
        swept = await asyncio.to_thread(storage.sweep_incoming)
        if swept:
            log.info("storage.swept_incoming", files=swept)
    return storage


def create_app(settings: Settings) -> FastAPI:
    async def start(platform: Platform) -> AppState:
        storage = await _ready_storage(settings)

        async def remove_deleted(uow: UnitOfWork) -> None:
            await remove_files(storage, uow.files_to_delete)

        return AppState(
            units=Units(platform.db, UnitOfWork, after_commit=remove_deleted),
            settings=settings,
            storage=storage,
            ticket_secret=settings.ticket_secret(),
        )

    service = Service(
        name="data-service",
        description=(
            "Training data: streaming upload, validation and stats, storage, downloads for workers."
        ),
        routers=[routes_upload.router, routes_datasets.router, routes_openai_files.router],
        start=start,
        # Uploads are multipart: the file and its framing. Anything else is a few bytes.
        max_body_bytes=settings.max_upload_bytes + routes_upload.MULTIPART_OVERHEAD,
        # The relay holds a connection of its own, outside the engine's pool.
        pools={"consumer": 1},
        queues=queue_specs,
        events=EVENTS,
        describe=lambda state: {"storage": state.storage.kind},
    )
    return build_app(service, settings)
