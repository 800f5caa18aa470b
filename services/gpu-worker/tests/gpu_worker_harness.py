"""The objects a worker test drives (importable: pytest's `pythonpath` lists this folder)."""

import asyncio
import os
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from gpu_worker_testing import DataServer, sha256
from messaging_testing import eventually

from contracts.enums import JobType
from contracts.events import DatasetValidated, Envelope
from contracts.routing import BrokerNames
from gpu_worker.service_layer.loop import Worker
from messaging.broker import Broker
from servicekit.auth import mint_token
from workerlink.link import BrokerLink

# The same values job-api's tests use (services/job-api/tests/job_api_testing.py).
ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
JWT_SECRET = "test-jwt-secret-0123456789abcdef"
WORKER_KEY = "test-worker-key-0123456789abcdef"
TABLES = (
    "jobs.job_events",
    "jobs.jobs",
    "jobs.outbox",
    "jobs.inbox",
    "jobs.known_datasets",
    "jobs.workers",
)


def user_headers(sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, sub, roles=[], ttl_seconds=3600)}"}


async def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"rabbitmqctl {' '.join(args)}: {err.decode()}"
    return out.decode()


class QuietDisplay:
    def start_job(self, spec: Any) -> None:
        pass

    def update(self, job_id: str, state: Any) -> None:
        pass

    def end_job(self, job_id: str, outcome: Any, message: str) -> None:
        pass


class Platform:
    """What a test drives: job-api's HTTP API, the data server, the broker namespace."""

    def __init__(
        self, client: httpx.AsyncClient, data: DataServer, prefix: str, amqp_url: str = AMQP_URL
    ) -> None:
        self.amqp_url = amqp_url
        self.client = client
        self.data = data
        self.prefix = prefix
        self.headers = user_headers("alice")

    async def add_dataset(
        self,
        content: bytes,
        *,
        data_format: str = "csv",
        job_types: tuple[JobType, ...] = (JobType.EMBEDDING, JobType.CLASSIFIER),
        claimed_sha256: str | None = None,
    ) -> uuid.UUID:
        """Store the file on the data server and tell job-api about it (dataset.validated)."""
        dataset_id = uuid.uuid4()
        self.data.files[str(dataset_id)] = content
        event = DatasetValidated(
            dataset_id=dataset_id,
            user_id="alice",
            filename=f"train.{data_format}",
            format=data_format,  # type: ignore[arg-type]
            job_types=list(job_types),
            rows=content.count(b"\n"),
            size_bytes=len(content),
            sha256=claimed_sha256 or sha256(content),
        )
        broker = Broker(self.amqp_url, BrokerNames(self.prefix), client_name="gpu-worker-test-data")
        await broker.connect()
        try:
            await broker.publish(Envelope.wrap(event, source="data-service"), event.routing_key())
        finally:
            await broker.close()
        return dataset_id

    async def submit(self, content: bytes, *, job_type: str = "embedding", **dataset: Any) -> str:
        dataset_id = await self.add_dataset(content, **dataset)
        body = {
            "job_type": job_type,
            "base_model": "sentence-transformers/all-MiniLM-L6-v2",
            "training_data_url": f"ftd://datasets/{dataset_id}",
            "output_model": "alice/custom-embedding",
            "gpu_provider": "local",
            "hyperparameters": {"epochs": 1},
        }

        async def created() -> str | None:
            response = await self.client.post("/api/finetune/jobs", json=body, headers=self.headers)
            if response.status_code == 201:
                return str(response.json()["data"]["id"])
            # job-api has not consumed dataset.validated yet: 409 dataset_not_ready, send it again.
            assert response.status_code == 409, response.text
            assert response.json()["error"]["code"] == "dataset_not_ready", response.text
            return None

        result: str = await eventually(created, timeout=15, interval=0.1)
        return result

    def admin_token(self) -> str:
        return f"Bearer {mint_token(JWT_SECRET, 'operator', roles=['admin'], ttl_seconds=3600)}"

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/api/finetune/jobs/{job_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/api/finetune/jobs/{job_id}/events", headers=self.headers, params={"limit": 200}
        )
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    async def until(
        self,
        job_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 30,
        interval: float = 0.1,
    ) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            job = await self.job(job_id)
            return job if predicate(job) else None

        result: dict[str, Any] = await eventually(check, timeout=timeout, interval=interval)
        return result

    async def cancel(self, job_id: str) -> None:
        response = await self.client.delete(f"/api/finetune/jobs/{job_id}", headers=self.headers)
        assert response.status_code == 200, response.text


class RunningWorker:
    def __init__(
        self, worker: Worker, task: "asyncio.Task[Any]", trainer: Any, publisher: Any
    ) -> None:
        self.worker = worker
        self.task = task
        self.trainer = trainer
        self.publisher = publisher

    @property
    def link(self) -> BrokerLink:
        return self.worker.link

    async def stop(self, timeout: float = 30) -> None:
        self.worker.request_shutdown()
        async with asyncio.timeout(timeout):
            await self.task
        await self.worker.link.close(flush_timeout=10)
