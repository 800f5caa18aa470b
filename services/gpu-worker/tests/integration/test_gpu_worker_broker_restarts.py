"""The worker outlives its broker: on a RabbitMQ node of its own (never the shared one:
tests/support/disposable.py), ten restarts in a row, graceful and SIGKILL alternately, some while
a job trains. The worker process never dies: it reconnects, subscribes its queues again and
carries on; every job completes once."""

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gpu_worker_harness import Platform, QuietDisplay
from gpu_worker_testing import GOOD_CSV, DataServer, FakePublisher, FakeTrainer
from job_api_testing import enroll_over_http, served_app

from contracts.enums import GPUProvider, JobType
from contracts.routing import SHARED_POOL, BrokerNames
from gpu_worker.adapters.publish import LocalCheckpointStore
from gpu_worker.domain.outcome import Outcome
from gpu_worker.entrypoints.toolkit import build_toolkit
from gpu_worker.service_layer.attempt import JobSettings
from gpu_worker.service_layer.loop import Worker
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RESTARTS = 10


@pytest.mark.timeout(900)
async def test_the_worker_survives_ten_broker_restarts_graceful_and_killed(
    job_api_settings: Callable[..., Any],
    data_server: DataServer,
    prefix: str,
    tmp_path: Path,
    killable_broker: Any,
) -> None:
    async with killable_broker() as node:
        settings = job_api_settings(amqp_url=node.url)
        async with served_app(settings) as (client, _app):
            platform = Platform(client, data_server, prefix, amqp_url=node.url)
            enrolled = await enroll_over_http(client, "outlives-its-broker")
            link = BrokerLink(
                node.url,
                BrokerNames(prefix),
                identity=WorkerIdentity.of(enrolled["token"], SHARED_POOL),
                provider=GPUProvider.LOCAL,
                job_types=(JobType.EMBEDDING, JobType.CLASSIFIER),
                reconnect_interval=0.5,
                heartbeat_interval=1,
            )
            await link.connect()
            trainer = FakeTrainer(steps=6)
            worker = Worker(
                link,
                toolkit=build_toolkit(
                    trainer,
                    FakePublisher(tmp_path / "models"),
                    lambda spec: LocalCheckpointStore(tmp_path / "checkpoints"),
                ),
                settings=JobSettings(
                    worker_id=link.worker_id,
                    work_dir=tmp_path / "work",
                    progress_interval=0.2,
                    stop_grace=30,
                ),
                display=QuietDisplay(),
                claim_timeout=5,
            )
            running = asyncio.create_task(worker.run())
            try:
                jobs = [await platform.submit(GOOD_CSV)]
                await platform.until(jobs[0], lambda j: j["status"] == "completed", timeout=60)
                for n in range(RESTARTS):
                    mid_job = n % 3 == 2
                    if mid_job:
                        # A restart while a job trains: its reports wait in the worker's
                        # outbox and go out once the broker is back.
                        trainer.release.clear()
                        trainer.holding.clear()
                        trainer.hold_at = 3
                        jobs.append(await platform.submit(GOOD_CSV))
                        assert await asyncio.to_thread(trainer.holding.wait, 60)
                    if n % 2 == 0:
                        await node.restart()
                    else:
                        await node.kill()
                        await node.start()
                    if mid_job:
                        trainer.release.set()
                        trainer.hold_at = None
                    else:
                        jobs.append(await platform.submit(GOOD_CSV))
                    assert not running.done(), running
                    await platform.until(
                        jobs[-1], lambda j: j["status"] == "completed", timeout=180, interval=0.5
                    )
                assert not running.done(), "the worker process never stopped"
                finished = [await platform.job(job_id) for job_id in jobs]
                assert [j["status"] for j in finished] == ["completed"] * len(jobs)
                # Each job once: the restarts never made one run twice.
                assert worker.outcomes.count(Outcome.COMPLETED) == len(jobs)
                assert {j["attempt"] for j in finished} == {1}
            finally:
                worker.request_shutdown()
                async with asyncio.timeout(60):
                    await asyncio.gather(running, return_exceptions=True)
                await link.close(flush_timeout=5)
    assert uuid.UUID(enrolled["worker"]["id"])
