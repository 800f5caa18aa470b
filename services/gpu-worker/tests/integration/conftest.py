"""Fixtures for the worker's tests against the real PostgreSQL, RabbitMQ and job-api (in-process,
as services/job-api/tests run it): one test database per session, one broker namespace (name
prefix) per test, a data server, and workers built from the runtime with a fake or real trainer."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from gpu_worker_harness import (
    ADMIN_DSN,
    AMQP_URL,
    JWT_SECRET,
    TABLES,
    WORKER_KEY,
    Platform,
    QuietDisplay,
    RunningWorker,
)
from gpu_worker_testing import DataServer, FakePublisher, FakeTrainer
from job_api_testing import enroll_over_http

from contracts.enums import GPUProvider, JobType
from contracts.routing import SHARED_POOL, BrokerNames
from gpu_worker.adapters.publish import LocalCheckpointStore
from gpu_worker.entrypoints.toolkit import build_toolkit
from gpu_worker.service_layer.attempt import JobSettings
from gpu_worker.service_layer.loop import Worker
from messaging.broker import Broker
from servicekit.db import bootstrap_service_database, drop_database, make_engine, with_credentials
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink


@pytest.fixture(scope="session")
async def worker_database_url() -> AsyncIterator[str]:
    name = f"ftd_worker_test_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    await bootstrap_service_database(
        ADMIN_DSN, database=name, role=name, password=password, schema="jobs"
    )
    url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
    from job_api.entrypoints.cli import migrate

    try:
        await asyncio.to_thread(migrate, url)
        yield url
    finally:
        await drop_database(ADMIN_DSN, name, roles=[name])


@pytest.fixture
async def worker_db(worker_database_url: str) -> AsyncIterator[None]:
    engine = make_engine(worker_database_url, application_name="gpu-worker-tests", pool_size=1)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    await engine.dispose()
    return


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    value = f"w{uuid.uuid4().hex[:8]}."
    yield value
    broker = Broker(AMQP_URL, BrokerNames(value), client_name="gpu-worker-test-teardown")
    await broker.connect()
    from job_api.entrypoints.workers import queue_specs

    names = broker.names
    specs = queue_specs(broker)
    try:
        for queue in [s.name for s in specs] + [names.dead_letter_queue]:
            channel = await broker.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue, if_unused=False, if_empty=False)
        exchanges = {s.exchange for s in specs if s.exchange}
        exchanges |= {names.events_exchange, names.worker_exchange, names.dead_letter_exchange}
        for exchange in exchanges:
            channel = await broker.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange, if_unused=False)
    finally:
        await broker.close()


@pytest.fixture
def data_server() -> Iterator[DataServer]:
    with DataServer().running() as server:
        yield server


@pytest.fixture
def job_api_settings(
    worker_database_url: str, prefix: str, worker_db: None, data_server: DataServer
) -> Callable[..., Any]:
    from job_api.config import Settings

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": worker_database_url,
            "amqp_url": AMQP_URL,
            "broker_prefix": prefix,
            "jwt_secret": JWT_SECRET,
            "worker_key": WORKER_KEY,
            # Encrypts linked Hub tokens; required outside development.
            "secrets_key": f"test-secrets-key-{uuid.uuid4().hex}",
            # Outside development a ticket secret of its own and no `_dev` password are required.
            "data_ticket_secret": f"test-ticket-secret-{uuid.uuid4().hex}",
            "db_password": uuid.uuid4().hex,
            "enable_offline_models": True,
            "public_base_url": data_server.base_url,
            "lease_seconds": 30,
            "watchdog_interval": 0.2,
            "presence_interval": 0.5,
            "db_pool_size": 5,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def job_api(
    job_api_settings: Callable[..., Any], request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    """job-api running in-process; `@pytest.mark.parametrize("job_api", [{...}], indirect=True)`
    overrides its settings."""
    from job_api_testing import served_app

    overrides = getattr(request, "param", {}) or {}
    # Over TCP: a worker asks job-api who it is (GET /api/workers/me) as ftd-worker does.
    async with served_app(job_api_settings(**overrides)) as (client, _app):
        yield client


@pytest.fixture
def platform(job_api: httpx.AsyncClient, data_server: DataServer, prefix: str) -> Platform:
    return Platform(job_api, data_server, prefix)


@pytest.fixture
async def start_worker(
    prefix: str, tmp_path: Path, job_api: httpx.AsyncClient
) -> AsyncIterator[Callable[..., Awaitable[RunningWorker]]]:
    started: list[RunningWorker] = []
    checkpoints = LocalCheckpointStore(tmp_path / "checkpoints")

    async def start(
        trainer: Any = None,
        *,
        publisher: Any = None,
        worker_id: str | None = None,
        job_types: tuple[JobType, ...] = (JobType.EMBEDDING, JobType.CLASSIFIER),
        progress_interval: float = 0.2,
        stop_grace: float = 30,
        amqp_url: str = AMQP_URL,
        broker_prefix: str | None = None,
    ) -> RunningWorker:
        trainer = trainer if trainer is not None else FakeTrainer()
        publisher = publisher if publisher is not None else FakePublisher(tmp_path / "models")
        # Enrolled as an operator enrolls a shared-pool worker (POST /api/workers).
        enrolled = await enroll_over_http(
            job_api, worker_id or f"test-worker-{uuid.uuid4().hex[:8]}"
        )
        identity = WorkerIdentity.of(enrolled["token"], SHARED_POOL)
        worker_id = identity.worker_id
        link = BrokerLink(
            amqp_url,
            BrokerNames(prefix if broker_prefix is None else broker_prefix),
            identity=identity,
            provider=GPUProvider.LOCAL,
            job_types=job_types,
            heartbeat_interval=1.0,
        )
        await link.connect()
        worker = Worker(
            link,
            toolkit=build_toolkit(trainer, publisher, lambda spec: checkpoints),
            settings=JobSettings(
                worker_id=worker_id,
                work_dir=tmp_path / worker_id,
                progress_interval=progress_interval,
                stop_grace=stop_grace,
            ),
            display=QuietDisplay(),
            claim_timeout=5,
        )
        running = RunningWorker(worker, asyncio.create_task(worker.run()), trainer, publisher)
        started.append(running)
        return running

    yield start
    for running in started:
        if not running.task.done():
            with contextlib.suppress(Exception):
                await running.stop()
        with contextlib.suppress(Exception):
            await running.worker.link.close(flush_timeout=1)
