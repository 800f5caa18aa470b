"""The worker runs jobs end to end with nothing but the broker user job-api made for it at
enrollment (invariant 5), the way `ftd-worker run` starts: it asks job-api who it is
(`/api/workers/me`), dials the broker as its own user with its token, declares nothing shared,
writes only its reports, heartbeats and claims, and reads only its pool's work queues, its
replies and its job's cancel key."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from gpu_worker_harness import Platform, QuietDisplay, rabbitmqctl
from gpu_worker_testing import GOOD_CSV, DataServer, FakePublisher, FakeTrainer
from job_api_testing import MANAGEMENT_URL, enroll_over_http, served_app
from messaging_testing import eventually

from contracts.enums import JobType
from gpu_worker.adapters.publish import LocalCheckpointStore
from gpu_worker.config import WorkerSettings
from gpu_worker.entrypoints.supervisor import serve
from gpu_worker.entrypoints.toolkit import build_toolkit

pytestmark = pytest.mark.integration


@pytest.fixture
async def vhost() -> AsyncIterator[str]:
    name = f"ftd-wperm-{uuid.uuid4().hex[:8]}"
    await rabbitmqctl("add_vhost", name)
    try:
        await rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        await rabbitmqctl("delete_vhost", name)


async def test_a_worker_with_only_its_own_broker_user_completes_and_cancels_jobs(
    vhost: str,
    job_api_settings: Callable[..., Any],
    data_server: DataServer,
    tmp_path: Path,
) -> None:
    path = quote(vhost, safe="")
    settings = job_api_settings(
        amqp_url=f"amqp://guest:guest@127.0.0.1:5672/{path}",
        broker_prefix="",
        broker_management_url=MANAGEMENT_URL,
        worker_amqp_url=f"amqp://127.0.0.1:5672/{path}",
    )
    async with served_app(settings) as (client, app):
        platform = Platform(client, data_server, "", amqp_url=settings.amqp_url.get_secret_value())
        enrolled = await enroll_over_http(client, "least-privilege")
        worker_id = enrolled["worker"]["id"].replace("-", "")
        assert app.state.service.broker_admin is not None
        users = await rabbitmqctl("list_users", "--no-table-headers", "-q")
        assert f"ftdw-{worker_id}" in users

        trainer = FakeTrainer(steps=6)
        toolkit = build_toolkit(
            trainer,
            FakePublisher(tmp_path / "models"),
            lambda spec: LocalCheckpointStore(tmp_path / "checkpoints"),
        )
        worker_settings = WorkerSettings(
            work_dir=tmp_path / "work", job_types=[JobType.EMBEDDING], progress_interval=0.2
        )
        running = asyncio.create_task(
            serve(
                worker_settings,
                [JobType.EMBEDDING],
                toolkit,
                QuietDisplay(),
                token=enrolled["token"],
                api_url=str(client.base_url),
            )
        )
        try:
            done = await platform.submit(GOOD_CSV)
            job = await platform.until(done, lambda j: j["status"] == "completed")
            assert (job["attempt"], job["worker_id"]) == (1, worker_id)

            trainer.hold_at = 3
            cancelled = await platform.submit(GOOD_CSV)
            assert await asyncio.to_thread(trainer.holding.wait, 30)
            await platform.cancel(cancelled)
            await platform.until(cancelled, lambda j: j["status"] == "cancelled")

            # The cancel reached the worker through its own (permitted) cancel binding; it
            # stopped training and reported nothing more.
            async def stopped() -> bool:
                return len(trainer.stopped_at) == 1

            await eventually(stopped, timeout=30)

            # Revoking it deletes its broker user: its connection closes and the process ends
            # with the credential refused (exit status 3), not a crash loop.
            revoked = await client.delete(
                f"/api/workers/{enrolled['worker']['id']}",
                headers={"Authorization": platform.admin_token()},
            )
            assert revoked.status_code == 200, revoked.text
            async with asyncio.timeout(60):
                assert await running == 3
            assert f"ftdw-{worker_id}" not in await rabbitmqctl(
                "list_users", "--no-table-headers", "-q"
            )
        finally:
            if not running.done():
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
