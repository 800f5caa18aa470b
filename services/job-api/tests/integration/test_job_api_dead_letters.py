"""`job-api dead-letters list | show | replay` against the real broker and a running job-api."""

import asyncio
import uuid
from typing import Any

import aio_pika
import pytest
from job_api_testing import AMQP_URL, eventually, job_body, running_app, user_headers
from typer.testing import CliRunner

from contracts.events import Envelope, JobProgress
from job_api.config import Settings
from job_api.entrypoints import cli_dead_letters
from job_api.entrypoints.cli import app as cli
from job_api.entrypoints.cli_dead_letters import read_dead_letters
from messaging.broker import Broker

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"


def run_cli(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(cli, ["dead-letters", *args])


async def test_dead_letters_are_listed_shown_without_secrets_and_replayed(
    settings: Settings, make_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The command reads its settings from the environment; here, the test's.
    monkeypatch.setattr(cli_dead_letters, "load_settings", lambda kind: settings)
    async with running_app(settings) as client:
        worker = await make_worker()
        created = await client.post(JOBS, json=job_body(), headers=user_headers())
        job_id = created.json()["data"]["id"]
        offer = await worker.next_offer(timeout=10)
        reply = await worker.claim(offer)
        assert reply.job is not None
        # A raw publisher beside the worker (the worker's client sends only well-formed reports).
        broker = Broker(AMQP_URL, worker.names, client_name="test-dead-letters")
        await broker.connect()
        names = broker.names

        # One poison message, rejected by job-api's consumer (it cannot be parsed)...
        garbage_id = str(uuid.uuid4())
        await broker.publish_raw(
            b"not json",
            routing_key="job.progress",
            message_id=garbage_id,
            event_type="job.progress",
            exchange=names.worker_exchange,
        )
        # ...and a valid report that was dead-lettered from job-api's queue (say, by an older
        # version that could not read it): it carries the attempt's claim secret.
        report = JobProgress(**worker.report_fields(reply.job), progress=42)
        envelope = Envelope.wrap(report, source=worker.source)
        channel = await broker.channel()
        dlx = await channel.get_exchange(names.dead_letter_exchange, ensure=False)
        await dlx.publish(
            aio_pika.Message(
                body=envelope.model_dump_json().encode(),
                message_id=str(envelope.id),
                type=envelope.type,
                headers={
                    "x-first-death-queue": names.service_queue("job-api"),
                    "x-first-death-reason": "rejected",
                },
            ),
            routing_key="job.progress",
        )
        await channel.close()
        await broker.close()

        async def both_dead() -> bool:
            return len(await read_dead_letters(settings)) == 2

        await eventually(both_dead)

        listed = await asyncio.to_thread(run_cli, settings, "list")
        assert listed.exit_code == 0, listed.output
        assert garbage_id in listed.output
        assert str(envelope.id) in listed.output
        assert "2 dead letter(s)" in listed.output

        shown = await asyncio.to_thread(run_cli, settings, "show", str(envelope.id))
        assert shown.exit_code == 0, shown.output
        assert "job.progress" in shown.output
        assert reply.job.claim_secret not in shown.output
        assert "[redacted]" in shown.output
        missing = await asyncio.to_thread(run_cli, settings, "show", str(uuid.uuid4()))
        assert missing.exit_code == 1

        replayed = await asyncio.to_thread(run_cli, settings, "replay", str(envelope.id))
        assert replayed.exit_code == 0, replayed.output
        assert f"replayed {envelope.id}" in replayed.output

        async def applied() -> bool:
            r = await client.get(f"{JOBS}/{job_id}", headers=user_headers())
            return bool(r.json()["data"]["progress"] == 42)

        await eventually(applied)
        left = await read_dead_letters(settings)
        assert [d.message_id for d in left] == [garbage_id]
