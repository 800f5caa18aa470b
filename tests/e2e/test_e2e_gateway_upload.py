"""Acceptance through the gateway only: a dataset uploaded through nginx is accepted by POST /jobs,
and the claim hands the worker a URL (through the gateway too) that downloads the exact bytes."""

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from data_service_testing import (
    ADMIN_DSN,
    AMQP_URL,
    JWT_SECRET,
    TICKET_SECRET,
    classifier_csv,
    eventually,
    free_socket,
    served,
    user_headers,
)

import data_service.entrypoints.cli as data_cli
import job_api.entrypoints.cli as job_cli
from contracts.enums import GPUProvider, JobType
from contracts.routing import SHARED_POOL, BrokerNames
from data_service.config import Settings as DataSettings
from data_service.entrypoints.app import create_app as create_data_app
from data_service.entrypoints.workers import queue_specs as data_queues
from job_api.config import Settings as JobSettings
from job_api.entrypoints.app import create_app as create_job_app
from job_api.entrypoints.workers import queue_specs as job_queues
from messaging.broker import Broker
from messaging.topology import delete_topology
from servicekit.db import bootstrap_service_database, drop_database, with_credentials
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def _database(schema: str, migrate: Any) -> tuple[str, str]:
    name = f"ftd_e2e_{schema}_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    await bootstrap_service_database(
        ADMIN_DSN, database=name, role=name, password=password, schema=schema
    )
    url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
    await asyncio.to_thread(migrate, url)
    return name, url


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    value = f"e{uuid.uuid4().hex[:8]}."
    yield value
    broker = Broker(AMQP_URL, BrokerNames(value), client_name="e2e-teardown")
    await broker.connect()
    channel = await broker.channel()
    specs = [*job_queues(broker), *data_queues(broker)]
    with contextlib.suppress(Exception):
        await delete_topology(
            channel,
            broker.names,
            [s.name for s in specs],
            [s.exchange for s in specs if s.exchange],
        )
    await broker.close()


@contextlib.contextmanager
def gateway(port: int, job_addr: str, data_addr: str, run_dir: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "FTD_GATEWAY_PORT": str(port),
        "FTD_GATEWAY_DIR": str(run_dir),
        "FTD_JOB_API_ADDR": job_addr,
        "FTD_DATA_SERVICE_ADDR": data_addr,
    }
    process = subprocess.Popen(["bash", str(ROOT / "scripts/gateway.sh")], env=env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


async def test_upload_through_the_gateway_trains_a_job_whose_claim_downloads_the_bytes(
    prefix: str, tmp_path: Path
) -> None:
    job_db, job_url = await _database("jobs", job_cli.migrate)
    data_db, data_url = await _database("data", data_cli.migrate)
    port_sock = free_socket()
    gateway_port = port_sock.getsockname()[1]
    port_sock.close()
    public = f"http://127.0.0.1:{gateway_port}"
    job_settings = JobSettings(
        environment="test",
        database_url=job_url,
        amqp_url=AMQP_URL,
        broker_prefix=prefix,
        jwt_secret=JWT_SECRET,
        worker_key="e2e-worker-key-0123456789abcdef",
        secrets_key=f"e2e-secrets-key-{uuid.uuid4().hex}",
        data_ticket_secret=TICKET_SECRET,
        db_password=uuid.uuid4().hex,
        enable_offline_models=True,
        public_base_url=public,
        db_pool_size=5,
        access_log=False,
    )
    data_settings = DataSettings(
        environment="test",
        database_url=data_url,
        amqp_url=AMQP_URL,
        broker_prefix=prefix,
        jwt_secret=JWT_SECRET,
        data_ticket_secret=TICKET_SECRET,
        db_password=uuid.uuid4().hex,
        storage_dir=tmp_path / "datasets",
        db_pool_size=4,
        access_log=False,
    )
    body = classifier_csv(64)
    try:
        async with (
            served(create_job_app(job_settings)) as job_base,
            served(create_data_app(data_settings)) as data_base,
        ):
            with gateway(
                gateway_port,
                job_base.removeprefix("http://"),
                data_base.removeprefix("http://"),
                tmp_path / "gw",
            ) as base:
                async with httpx.AsyncClient(base_url=base, timeout=30) as client:

                    async def up() -> bool:
                        with contextlib.suppress(httpx.TransportError):
                            return (
                                await client.get(
                                    "/api/finetune/base-models", headers=user_headers()
                                )
                            ).status_code == 200
                        return False

                    await eventually(up, timeout=30)
                    r = await client.post(
                        "/api/finetune/upload",
                        headers={**user_headers(), "X-Request-Id": "e2e-upload-1"},
                        files={"file": ("train.csv", body, "text/csv")},
                    )
                    assert r.status_code == 201, r.text
                    assert r.headers["x-request-id"] == "e2e-upload-1"
                    dataset = r.json()["data"]
                    assert (
                        await client.get("/api/finetune/datasets", headers=user_headers())
                    ).headers["x-request-id"]

                    job_body = {
                        "job_type": "classifier",
                        "base_model": "offline/tiny-classifier",
                        "training_data_url": dataset["training_data_url"],
                        "output_model": "alice/e2e-classifier",
                        "gpu_provider": "local",
                    }
                    catalogue = (
                        await client.get("/api/finetune/base-models", headers=user_headers())
                    ).json()["data"]
                    models = next(t["models"] for t in catalogue if t["job_type"] == "classifier")
                    job_body["base_model"] = models[0]["id"]

                    async def accepted() -> Any:
                        created = await client.post(
                            "/api/finetune/jobs", headers=user_headers(), json=job_body
                        )
                        return created if created.status_code == 201 else None

                    created = await eventually(accepted, timeout=20)
                    job_id = created.json()["data"]["id"]

                    enrolled = await client.post(
                        "/api/workers",
                        json={"name": "e2e", "pool": "shared"},
                        headers=user_headers("operator", admin=True),
                    )
                    assert enrolled.status_code == 201, enrolled.text
                    worker = BrokerLink(
                        AMQP_URL,
                        BrokerNames(prefix),
                        identity=WorkerIdentity.of(enrolled.json()["data"]["token"], SHARED_POOL),
                        provider=GPUProvider.LOCAL,
                        job_types=(JobType.CLASSIFIER,),
                    )
                    await worker.connect()
                    await worker.resume_offers()
                    try:
                        offer = await worker.next_offer(timeout=20)
                        assert str(offer.job_id) == job_id
                        reply = await worker.claim(offer)
                        assert reply.granted, reply
                        assert reply.job is not None
                        url = reply.job.data.url
                        token = reply.job.data.token
                        assert url.startswith(public + "/api/finetune/datasets/")
                        assert token is not None
                        assert token not in url
                        async with httpx.AsyncClient(timeout=30) as plain:
                            got = await plain.get(url, headers={"Authorization": f"Bearer {token}"})
                        assert got.status_code == 200
                        assert got.content == body
                        assert got.headers["x-content-sha256"] == dataset["sha256"]
                    finally:
                        await worker.close(flush_timeout=1)
    finally:
        await drop_database(ADMIN_DSN, job_db, roles=[job_db])
        await drop_database(ADMIN_DSN, data_db, roles=[data_db])
