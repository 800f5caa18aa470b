"""The worker runs a job end to end with nothing but the `worker` broker user's grants from
deploy/rabbitmq/definitions.json (invariant 5): it declares nothing shared, writes only its reports
and claims, and reads only work queues, its replies and its job's cancel key."""

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from gpu_worker_harness import Platform, rabbitmqctl
from gpu_worker_testing import GOOD_CSV, DataServer, FakeTrainer
from messaging_testing import eventually

from gpu_worker.runtime.job import Outcome

pytestmark = pytest.mark.integration

DEFINITIONS = Path(__file__).resolve().parents[4] / "deploy" / "rabbitmq" / "definitions.json"


@pytest.fixture
async def worker_vhost() -> AsyncIterator[dict[str, str]]:
    definitions = json.loads(DEFINITIONS.read_text())
    [perms] = [p for p in definitions["permissions"] if p["user"] == "worker"]
    topics = [p for p in definitions["topic_permissions"] if p["user"] == "worker"]
    tag = uuid.uuid4().hex[:8]
    vhost, user, password = f"ftd-wperm-{tag}", f"ftd-wworker-{tag}", secrets.token_hex(16)
    await rabbitmqctl("add_vhost", vhost)
    try:
        await rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        await rabbitmqctl("add_user", user, password)
        await rabbitmqctl(
            "set_permissions", "-p", vhost, user, perms["configure"], perms["write"], perms["read"]
        )
        for topic in topics:
            await rabbitmqctl(
                "set_topic_permissions", "-p", vhost, user,
                topic["exchange"], topic["write"], topic["read"],
            )  # fmt: skip
        base = "amqp://{}:{}@127.0.0.1:5672/" + quote(vhost, safe="")
        yield {
            "admin": base.format("guest", "guest"),
            "worker": base.format(quote(user, safe=""), quote(password, safe="")),
        }
    finally:
        await rabbitmqctl("delete_vhost", vhost)
        await rabbitmqctl("delete_user", user)


async def test_a_worker_with_only_the_worker_grants_completes_and_cancels_jobs(
    worker_vhost: dict[str, str],
    job_api_settings: Callable[..., Any],
    data_server: DataServer,
    start_worker: Any,
) -> None:
    from job_api_testing import running_app

    settings = job_api_settings(amqp_url=worker_vhost["admin"], broker_prefix="")
    async with running_app(settings) as client:
        platform = Platform(client, data_server, "", amqp_url=worker_vhost["admin"])
        trainer = FakeTrainer(steps=6)
        worker = await start_worker(trainer, amqp_url=worker_vhost["worker"], broker_prefix="")

        done = await platform.submit(GOOD_CSV)
        job = await platform.until(done, lambda j: j["status"] == "completed")
        assert job["attempt"] == 1

        trainer.hold_at = 3
        cancelled = await platform.submit(GOOD_CSV)
        assert await _holding(trainer)
        await platform.cancel(cancelled)
        await platform.until(cancelled, lambda j: j["status"] == "cancelled")

        async def stopped() -> bool:
            return len(worker.worker.outcomes) == 2

        # The cancel reached the worker through its own (permitted) cancel binding.
        await eventually(stopped, timeout=30)
        assert worker.worker.outcomes == [Outcome.COMPLETED, Outcome.CANCELLED]
        await worker.stop()


async def _holding(trainer: FakeTrainer) -> bool:
    import asyncio

    return await asyncio.to_thread(trainer.holding.wait, 30)
