"""/v1/fine_tuning/jobs over TCP, driven by the `openai` package as its users drive it: a job made
from an uploaded file (its dataset projected from data-service's event, as job-api learns of it),
listed, retrieved, trained by a worker through the broker to `succeeded`, its events and
checkpoint; cancelling; each refusal as the typed error the package raises from OpenAI's shape."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest
import sqlalchemy as sa
from job_api_testing import eventually, served_app, user_headers

from contracts.enums import JobType, ModelStore
from contracts.events import DatasetValidated, Envelope
from contracts.worker_reports import JobProgress, ModelPushed
from job_api.config import Settings
from workerlink.link import BrokerLink

pytestmark = pytest.mark.integration

TINY_LLAMA = "ftd-local/tiny-llama"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def token(sub: str) -> str:
    return user_headers(sub)["Authorization"].removeprefix("Bearer ")


@pytest.fixture
async def base_url(settings: Settings) -> AsyncIterator[str]:
    async with served_app(settings) as (client, _app):
        yield f"{str(client.base_url).rstrip('/')}/v1"


def client_for(base_url: str, sub: str = "alice", retries: int = 5) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=token(sub), max_retries=retries)


async def announce(publisher: Any, job_type: JobType, user: str = "alice") -> str:
    """data-service's dataset.validated for a new dataset; returns its file id."""
    dataset_id = uuid.uuid4()
    payload = DatasetValidated(
        dataset_id=dataset_id,
        user_id=user,
        filename="train.jsonl",
        format="jsonl" if job_type is JobType.LLM_LORA else "csv",
        job_types=[job_type],
        rows=12,
        size_bytes=1200,
        sha256="0" * 64,
    )
    await publisher.publish(Envelope.wrap(payload, source="data-service"), payload.routing_key())
    return f"file-{dataset_id}"


async def job_rows(db: Any) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(sa.text("SELECT count(*) FROM jobs.jobs")))


async def test_a_job_is_created_listed_trained_to_succeeded_with_events_and_a_checkpoint(
    base_url: str,
    publisher: Any,
    make_worker: Callable[..., Awaitable[BrokerLink]],
) -> None:
    worker = await make_worker("w1")
    training_file = await announce(publisher, JobType.LLM_LORA)
    async with client_for(base_url) as alice, client_for(base_url, "bob") as bob:
        # The file was announced a moment ago: a 409 dataset_not_ready, retried by the package.
        job = await alice.fine_tuning.jobs.create(
            training_file=training_file,
            model=TINY_LLAMA,
            suffix="reverse",
            seed=7,
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 2, "learning_rate_multiplier": 0.5}},
            },
        )
        assert job.id.startswith("ftjob-")
        assert job.object == "fine_tuning.job"
        assert job.status == "queued"
        assert job.model == TINY_LLAMA
        assert job.training_file == training_file
        assert job.organization_id == "org-ftd"
        assert job.result_files == []
        assert job.seed == 7
        assert job.fine_tuned_model is None
        assert job.finished_at is None
        assert job.hyperparameters.n_epochs == 2
        assert job.hyperparameters.batch_size == 4  # llm_lora's default ("auto")
        assert job.hyperparameters.learning_rate_multiplier == 0.5
        assert job.method is not None
        assert job.method.type == "supervised"
        extra = job.model_extra or {}
        assert extra["ftd_output_model"] == "alice/tiny-llama-reverse"
        assert extra["ftd_job_type"] == "llm_lora"

        assert (await alice.fine_tuning.jobs.retrieve(job.id)).id == job.id
        assert [j.id async for j in alice.fine_tuning.jobs.list()] == [job.id]
        assert [j.id async for j in bob.fine_tuning.jobs.list()] == []
        with pytest.raises(openai.NotFoundError):
            await bob.fine_tuning.jobs.retrieve(job.id)
        assert (await alice.fine_tuning.jobs.checkpoints.list(job.id)).data == []

        # A worker takes it through the broker, reports progress, pushes the model.
        offer = await worker.next_offer(timeout=10)
        assert f"ftjob-{offer.job_id}" == job.id
        reply = await worker.claim(offer)
        assert reply.granted
        assert reply.job is not None
        assert reply.job.hyperparameters["epochs"] == 2
        assert reply.job.hyperparameters["learning_rate"] == pytest.approx(1e-4)
        assert reply.job.hyperparameters["seed"] == 7
        secret = reply.job.claim_secret
        await worker.publish(
            JobProgress(
                job_id=offer.job_id,
                attempt=1,
                worker_id=worker.worker_id,
                claim_secret=secret,
                progress=50,
                step=5,
                total_steps=10,
                loss=0.75,
                log_lines=["epoch 1 done"],
            )
        )

        async def running() -> bool:
            return (await alice.fine_tuning.jobs.retrieve(job.id)).status == "running"

        await eventually(running)
        await worker.publish(
            ModelPushed(
                job_id=offer.job_id,
                attempt=1,
                worker_id=worker.worker_id,
                claim_secret=secret,
                repo_id="alice/tiny-llama-reverse",
                revision="rev1",
                store=ModelStore.LOCAL,
                uri="file:///models/alice/tiny-llama-reverse",
            )
        )

        async def succeeded() -> Any:
            got = await alice.fine_tuning.jobs.retrieve(job.id)
            return got if got.status == "succeeded" else None

        done = await eventually(succeeded)
        assert done.fine_tuned_model == "alice/tiny-llama-reverse"
        assert done.finished_at is not None
        assert done.finished_at >= done.created_at
        assert done.error is None

        events = [e async for e in alice.fine_tuning.jobs.list_events(job.id, limit=2)]
        assert len(events) >= 4
        assert [int(e.id.removeprefix("ftevent-")) for e in events] == sorted(
            (int(e.id.removeprefix("ftevent-")) for e in events), reverse=True
        )
        assert events[-1].message == "Fine-tuning job created; waiting for a worker."
        metrics = [e for e in events if e.type == "metrics"]
        assert metrics
        assert metrics[0].data == {"step": 5, "total_steps": 10, "train_loss": 0.75}
        assert "Step 5/10" in metrics[0].message
        assert "epoch 1 done" in metrics[0].message
        assert all(e.level == "info" for e in events)

        [checkpoint] = (await alice.fine_tuning.jobs.checkpoints.list(job.id)).data
        assert checkpoint.fine_tuning_job_id == job.id
        assert checkpoint.fine_tuned_model_checkpoint == "alice/tiny-llama-reverse@rev1"

        with pytest.raises(openai.ConflictError) as ended:
            await alice.fine_tuning.jobs.cancel(job.id)
        assert ended.value.code == "illegal_transition"


async def test_jobs_are_paged_newest_first_and_a_queued_job_is_cancelled(
    base_url: str, publisher: Any
) -> None:
    training_file = await announce(publisher, JobType.EMBEDDING)
    async with client_for(base_url) as alice:
        ids = []
        for _ in range(3):
            # all-MiniLM-L6-v2 trains embedding and classifier jobs: the file decides.
            job = await alice.fine_tuning.jobs.create(training_file=training_file, model=MINILM)
            assert (job.model_extra or {})["ftd_job_type"] == "embedding"
            ids.append(job.id)
        outputs = {
            (await alice.fine_tuning.jobs.retrieve(i)).model_extra["ftd_output_model"]  # type: ignore[index]
            for i in ids
        }
        assert len(outputs) == 3  # without a suffix each job names its own model
        assert all(o.startswith("alice/all-MiniLM-L6-v2-") for o in outputs)

        page = await alice.fine_tuning.jobs.list(limit=2)
        assert [j.id for j in page.data] == [ids[2], ids[1]]
        assert page.has_more is True
        rest = await alice.fine_tuning.jobs.list(limit=2, after=ids[1])
        assert [j.id for j in rest.data] == [ids[0]]
        assert rest.has_more is False
        assert [j.id async for j in alice.fine_tuning.jobs.list(limit=1)] == ids[::-1]

        cancelled = await alice.fine_tuning.jobs.cancel(ids[0])
        assert cancelled.status == "cancelled"
        assert cancelled.finished_at is not None
        [latest, *_] = (await alice.fine_tuning.jobs.list_events(ids[0])).data
        assert latest.level == "warn"
        assert latest.message.startswith("Job cancelled")


async def test_refusals_come_as_openai_errors_and_leave_no_job(
    base_url: str, publisher: Any, db: Any
) -> None:
    training_file = await announce(publisher, JobType.LLM_LORA)
    async with client_for(base_url) as alice:
        # The projection is in once a good request succeeds.
        await alice.fine_tuning.jobs.create(training_file=training_file, model=TINY_LLAMA)
    before = await job_rows(db)
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"model": "gpt-4o-mini"}, "model_not_found", "model"),
        ({"model": MINILM}, "file_incompatible", "training_file"),
        ({"training_file": "train.jsonl"}, "invalid_training_file", "training_file"),
        ({"method": {"type": "dpo"}}, "unsupported_method", "method.type"),
        ({"suffix": "no spaces please"}, "invalid_output_model", "suffix"),
        ({"validation_file": training_file}, "unsupported_parameter", "validation_file"),
        (
            {"hyperparameters": {"n_epochs": 2, "epochs": 3}},
            "conflicting_hyperparameters",
            "hyperparameters.n_epochs",
        ),
        ({"hyperparameters": {"n_epochs": 0}}, "invalid_hyperparameters", "hyperparameters.epochs"),
        ({"hyperparameters": {"n_epochs": "many"}}, "validation_error", None),
    ]
    async with client_for(base_url, retries=0) as alice:
        for overrides, code, param in cases:
            request: dict[str, Any] = {"training_file": training_file, "model": TINY_LLAMA}
            request.update(overrides)
            with pytest.raises(openai.BadRequestError) as refused:
                await alice.fine_tuning.jobs.create(**request)
            assert refused.value.code == code, (overrides, refused.value.body)
            if param is not None:
                assert refused.value.param == param, (overrides, refused.value.body)
            assert isinstance(refused.value.body, dict)
            assert refused.value.body["type"] == "invalid_request_error"

        never_announced = f"file-{uuid.uuid4()}"
        with pytest.raises(openai.ConflictError) as unknown:
            await alice.fine_tuning.jobs.create(training_file=never_announced, model=TINY_LLAMA)
        assert unknown.value.code == "dataset_not_ready"
        assert unknown.value.response.headers["retry-after"] == "1"

        for missing in ("ftjob-nope", f"ftjob-{uuid.uuid4()}"):
            with pytest.raises(openai.NotFoundError):
                await alice.fine_tuning.jobs.retrieve(missing)
            with pytest.raises(openai.NotFoundError):
                await alice.fine_tuning.jobs.cancel(missing)
            with pytest.raises(openai.NotFoundError):
                await alice.fine_tuning.jobs.list_events(missing)
    async with openai.AsyncOpenAI(base_url=base_url, api_key="nope", max_retries=0) as anon:
        with pytest.raises(openai.AuthenticationError) as denied:
            await anon.fine_tuning.jobs.list()
        assert isinstance(denied.value.body, dict)
        assert denied.value.body["type"] == "authentication_error"
    assert await job_rows(db) == before
