"""A job is offered only to workers whose hardware satisfies its base model's class: a CPU worker
takes LoRA on the tiny offline Llama, while a 7B job waits in its GPU class's queue for a worker
with a big enough GPU, and says so (`waiting` names the GB)."""

import uuid
from typing import Any

import httpx
import pytest
from job_api_testing import eventually, job_body, user_headers

from contracts.catalogue import OFFLINE_TINY_LLAMA, HardwareClass
from contracts.enums import GPUProvider, JobType
from contracts.rpc import ClaimRefusal
from workerlink.link import BrokerLink

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"
LLAMA_7B = "meta-llama/Llama-2-7b-hf"


def lora_body(base_model: str, output_model: str) -> dict[str, Any]:
    return job_body(job_type="llm_lora", base_model=base_model, output_model=output_model)


async def queue_depth(link: BrokerLink, queue: str) -> int:
    """Ready messages in `queue` (a passive declare: fails if the queue does not exist)."""
    channel = await link.connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await channel.close()


async def test_a_cpu_worker_gets_the_tiny_llama_and_a_7b_waits_for_a_big_gpu(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    cpu = await make_worker("cpu-box", job_types=(JobType.LLM_LORA,))
    # The 7B first: were it routed to the CPU's queue, it would be the first offer there.
    big = await client.post(JOBS, json=lora_body(LLAMA_7B, "alice/big"), headers=user_headers())
    small = await client.post(
        JOBS, json=lora_body(OFFLINE_TINY_LLAMA, "alice/small"), headers=user_headers()
    )
    assert big.status_code == small.status_code == 201, (big.text, small.text)
    big_job, small_job = big.json()["data"], small.json()["data"]
    assert (big_job["hardware_class"], small_job["hardware_class"]) == ("gpu24", "cpu")

    offer = await cpu.next_offer(timeout=10)
    assert str(offer.job_id) == small_job["id"]
    assert (await cpu.claim(offer)).granted

    # The 7B offer sits in the 24 GB class's queue, which no CPU worker consumes.
    gpu_queue = cpu.names.work_queue(JobType.LLM_LORA, GPUProvider.LOCAL, HardwareClass.GPU24)
    assert gpu_queue not in cpu.names.offer_queues(
        cpu.identity.pool, cpu.job_types, cpu.provider, cpu.gpu_memory_gb
    )

    async def offered() -> bool:
        return await queue_depth(cpu, gpu_queue) == 1

    await eventually(offered)

    async def waiting() -> dict[str, Any] | None:
        response = await client.get(f"{JOBS}/{big_job['id']}", headers=user_headers())
        notice: dict[str, Any] | None = response.json()["data"]["waiting"]
        return notice if notice is not None and notice["reason"] == "no_worker" else None

    notice = await eventually(waiting)
    assert notice["needs"] == "needs a GPU worker with ≥ 24 GB"
    assert "needs a GPU worker with ≥ 24 GB" in notice["message"]

    # A CPU worker that claims it anyway (consuming beyond its hardware) is refused.
    refused = await cpu.request_claim(uuid.UUID(big_job["id"]))
    assert not refused.granted
    assert refused.refusal is ClaimRefusal.INSUFFICIENT_HARDWARE

    gpu = await make_worker("l4-box", job_types=(JobType.LLM_LORA,), gpu_memory_gb=24)
    offer = await gpu.next_offer(timeout=10)
    assert str(offer.job_id) == big_job["id"]
    assert (await gpu.claim(offer)).granted

    async def advertised() -> dict[str, Any] | None:
        response = await client.get("/api/workers", headers=user_headers())
        found = {w["name"]: w for w in response.json()["data"]}
        both = found.get("cpu-box"), found.get("l4-box")
        return found if all(w and w["hardware_classes"] for w in both) else None

    workers = await eventually(advertised)
    assert workers["cpu-box"]["gpu_memory_gb"] is None
    assert workers["cpu-box"]["hardware_classes"] == ["cpu"]
    assert workers["l4-box"]["gpu_memory_gb"] == 24
    assert workers["l4-box"]["hardware_classes"] == ["cpu", "gpu16", "gpu24"]
