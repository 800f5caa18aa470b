"""The create route's dry run through the real app: it checks as a create does and writes
nothing, answers per kind of worker online (hardware from their heartbeats), measures throughput
from the jobs it completed, and warns when only slow workers could take the job."""

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from job_api_testing import AMQP_URL, enroll_worker, eventually, job_body, user_headers
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.enums import GPUProvider, JobType, ModelStore
from contracts.events import DatasetValidated, Envelope, ModelPushed
from contracts.routing import BrokerNames, dataset_ref
from messaging.broker import Broker
from workerlink.link import BrokerLink

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"
DRY_RUN = f"{JOBS}?dry_run=true"
ALICE = user_headers("alice")
WRITTEN = ("jobs.jobs", "jobs.outbox", "jobs.job_events", "jobs.idempotency_keys")
T4 = "1 CUDA GPU(s): Tesla T4 (15 GB)"


LLAMA_7B = {
    "job_type": "llm_lora",
    "base_model": "meta-llama/Llama-2-7b-hf",
    "output_model": "alice/llama-lora",
}


async def announce_dataset(
    publisher: Broker,
    *,
    rows: int,
    tokens: int | None,
    client: httpx.AsyncClient,
    **body: Any,
) -> str:
    """data-service's dataset.validated, then wait until job-api's projection holds it."""
    dataset_id = uuid.uuid4()
    payload = DatasetValidated(
        dataset_id=dataset_id,
        user_id="alice",
        filename="train.csv",
        format="csv",
        job_types=[JobType(body.get("job_type", "embedding"))],
        rows=rows,
        size_bytes=rows * 40,
        sha256="0" * 64,
        estimated_tokens=tokens,
    )
    await publisher.publish(Envelope.wrap(payload, source="data-service"), payload.routing_key())
    ref = dataset_ref(dataset_id)

    async def known() -> bool:
        r = await client.post(DRY_RUN, json=job_body(training_data_url=ref, **body), headers=ALICE)
        return r.status_code == 200

    await eventually(known)
    return ref


@pytest.fixture
async def hardware_worker(
    broker_prefix: str, db: AsyncEngine
) -> AsyncIterator[Callable[..., Awaitable[BrokerLink]]]:
    """A shared-pool worker's link (gpu-worker's client) that advertises `hardware`."""
    links: list[BrokerLink] = []

    async def start(
        name: str,
        hardware: str,
        *,
        gpu_memory_gb: int | None = None,
        job_types: tuple[JobType, ...] = (JobType.EMBEDDING,),
    ) -> BrokerLink:
        link = BrokerLink(
            AMQP_URL,
            BrokerNames(broker_prefix),
            identity=await enroll_worker(db, name=name),
            provider=GPUProvider.LOCAL,
            job_types=job_types,
            hardware=hardware,
            gpu_memory_gb=gpu_memory_gb,
        )
        await link.connect()
        await link.resume_offers()
        links.append(link)
        return link

    yield start
    for link in links:
        with contextlib.suppress(Exception):
            await link.close(flush_timeout=1)


async def dry_run(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    r = await client.post(DRY_RUN, json=job_body(**overrides), headers=ALICE)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


async def counts(db: AsyncEngine) -> dict[str, int]:
    found = {}
    async with db.connect() as conn:
        for table in WRITTEN:
            query = sa.text(f"SELECT count(*) FROM {table}")  # noqa: S608 (our own names)
            found[table] = int(await conn.scalar(query) or 0)
    return found


async def test_a_dry_run_checks_like_a_create_and_creates_nothing(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    before = await counts(db)
    r = await client.post(DRY_RUN, json=job_body(), headers={**ALICE, "Idempotency-Key": "dry-1"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["dry_run"] is True
    assert data["steps"] is None  # an external URL: its size is unknown
    assert "data_size_unknown" in [w["code"] for w in data["warnings"]]
    assert await counts(db) == before
    # The same key still creates the job afterwards: the dry run claimed nothing.
    created = await client.post(
        JOBS, json=job_body(), headers={**ALICE, "Idempotency-Key": "dry-1"}
    )
    assert created.status_code == 201, created.text
    assert "Idempotent-Replayed" not in created.headers

    for bad in (
        {"base_model": "no/such-model"},
        {"hyperparameters": {"epochs": 0}},
        {"output_model": "bob/not-yours"},
        {"training_data_url": "ftd://datasets/not-a-uuid"},
    ):
        as_create = await client.post(JOBS, json=job_body(**bad), headers=ALICE)
        as_dry_run = await client.post(DRY_RUN, json=job_body(**bad), headers=ALICE)
        assert as_create.status_code >= 400
        assert as_dry_run.status_code == as_create.status_code, bad
        assert as_dry_run.json()["error"]["code"] == as_create.json()["error"]["code"]
    after = await counts(db)
    assert after["jobs.jobs"] == before["jobs.jobs"] + 1


async def test_estimates_turn_measured_after_a_completed_job(
    client: httpx.AsyncClient,
    publisher: Broker,
    hardware_worker: Callable[..., Awaitable[BrokerLink]],
) -> None:
    ref = await announce_dataset(publisher, rows=1000, tokens=50_000, client=client)
    alone = await dry_run(client, training_data_url=ref)
    assert alone["train_rows"] == 900
    assert alone["eval_rows"] == 100
    assert alone["train_tokens"] == 45_000
    assert alone["steps_per_epoch"] == 57  # ceil(900 / 16)
    assert alone["steps"] == 171
    assert "no_worker_online" in [w["code"] for w in alone["warnings"]]
    assert all(e["workers_online"] == 0 for e in alone["estimates"])

    worker = await hardware_worker("t4", T4, gpu_memory_gb=15)

    async def t4_online() -> dict[str, Any] | None:
        data = await dry_run(client, training_data_url=ref)
        kinds = {e["worker_kind"]: e for e in data["estimates"]}
        return kinds.get("Tesla T4 (15 GB)")

    prior = await eventually(t4_online)
    assert prior["workers_online"] == 1
    assert prior["basis"] == "prior"
    assert prior["sample_count"] == 0

    created = await client.post(JOBS, json=job_body(training_data_url=ref), headers=ALICE)
    assert created.status_code == 201, created.text
    job_id = created.json()["data"]["id"]
    offer = await worker.next_offer(timeout=15)
    assert str(offer.job_id) == job_id
    reply = await worker.claim(offer)
    assert reply.granted, reply
    assert reply.job is not None
    await worker.publish(
        ModelPushed(
            **worker.report_fields(reply.job),
            repo_id="alice/custom-embedding",
            revision="r1",
            store=ModelStore.HUB,
            uri="hf://alice/custom-embedding@r1",
        )
    )

    async def completed() -> bool:
        r = await client.get(f"{JOBS}/{job_id}", headers=ALICE)
        return bool(r.json()["data"]["status"] == "completed")

    await eventually(completed, timeout=30)
    data = await dry_run(client, training_data_url=ref)
    [t4] = [e for e in data["estimates"] if e["worker_kind"] == "Tesla T4 (15 GB)"]
    assert t4["basis"] == "measured"
    assert t4["sample_count"] == 1
    assert t4["tokens_per_second"] is not None
    assert t4["seconds"] is not None


async def test_it_warns_when_only_slow_workers_could_take_the_job(
    client: httpx.AsyncClient,
    publisher: Broker,
    hardware_worker: Callable[..., Awaitable[BrokerLink]],
) -> None:
    # A million rows, three epochs, on a CPU at the prior's pace: well over an hour.
    ref = await announce_dataset(publisher, rows=1_000_000, tokens=None, client=client)
    await hardware_worker("laptop", "CPU only")

    async def cpu_online() -> dict[str, Any] | None:
        data = await dry_run(client, training_data_url=ref)
        online = [e for e in data["estimates"] if e["workers_online"] > 0]
        return data if [e["worker_kind"] for e in online] == ["cpu"] else None

    data = await eventually(cpu_online)
    codes = [w["code"] for w in data["warnings"]]
    assert codes == ["slow_on_available_workers"]
    assert data["estimates"][0]["seconds"] > 3600
    # Fewer rows (a small dataset) on the same worker: no warning.
    small = await announce_dataset(publisher, rows=200, tokens=None, client=client)
    assert (await dry_run(client, training_data_url=small))["warnings"] == []


async def test_a_worker_counts_only_for_base_models_its_hardware_fits(
    client: httpx.AsyncClient,
    publisher: Broker,
    hardware_worker: Callable[..., Awaitable[BrokerLink]],
) -> None:
    """A CPU worker that takes LoRA jobs counts for an embedding job, not for a 7B LoRA one (it
    needs a GPU of 16 GB or more): that job is told no worker that could take it is online."""
    embedding = await announce_dataset(publisher, rows=200, tokens=None, client=client)
    lora = await announce_dataset(publisher, rows=200, tokens=None, client=client, **LLAMA_7B)
    await hardware_worker("laptop", "CPU only", job_types=(JobType.EMBEDDING, JobType.LLM_LORA))

    async def cpu_online() -> bool:
        data = await dry_run(client, training_data_url=embedding)
        return any(e["workers_online"] for e in data["estimates"])

    await eventually(cpu_online)
    data = await dry_run(client, training_data_url=lora, **LLAMA_7B)
    assert all(e["workers_online"] == 0 for e in data["estimates"])
    assert [w["code"] for w in data["warnings"]] == ["no_worker_online"]
    assert data["steps_per_epoch"] == 12  # ceil(ceil(180 / 4) / 4): LoRA's optimizer steps
