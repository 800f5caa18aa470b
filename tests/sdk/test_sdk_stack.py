"""The SDK against the real stack (gateway, services, the CPU worker): a whole job lifecycle,
typed errors with the API's codes, and an event stream that survives a dropped connection."""

import asyncio
import uuid
from pathlib import Path

import ftd
import pytest
from ftd import AsyncClient, Client, JobEvent, JobSnapshot, JobStatus
from ftd_stack import Stack
from sdk_testing import (
    JOB_TIMEOUT_S,
    DroppingProxy,
    classifier_csv,
    offline_base_model,
    start_job,
    wait_for,
)

pytest.importorskip("torch", reason="the training stack is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.training, pytest.mark.timeout(900)]


def test_a_job_lifecycle_through_the_sdk(
    stack: Stack, sdk: Client, token: str, tmp_path: Path
) -> None:
    path = classifier_csv(tmp_path / "reviews.csv", repeat=4)
    sent: list[tuple[int, int | None]] = []
    dataset = sdk.datasets.upload(
        path, job_type="classifier", progress=lambda s, t: sent.append((s, t))
    )
    assert isinstance(dataset, ftd.Dataset)
    assert dataset.rows == 40
    assert dataset.validation["valid"] is True
    assert sent[-1] == (path.stat().st_size, path.stat().st_size)

    output = "sdk-alice/lifecycle"
    job = sdk.jobs.create(
        job_type="classifier",
        base_model=offline_base_model(sdk, "classifier"),
        training_data_url=dataset.training_data_url,
        output_model=output,
        gpu_provider="local",
        hyperparameters={"epochs": 2, "batch_size": 4, "eval_split": 0.2, "max_seq_length": 32},
    )
    assert job.status is JobStatus.PENDING
    assert job.dataset_id == dataset.id
    assert any(j.id == job.id for j in sdk.jobs.list(limit=50))

    items = list(job.events(timeout=JOB_TIMEOUT_S))
    snapshot, events = items[0], items[1:]
    assert isinstance(snapshot, JobSnapshot)
    assert snapshot.job.id == job.id
    assert all(isinstance(e, JobEvent) for e in events)
    ids = [e.id for e in events]
    assert ids == sorted(set(ids)), "ids grow along the stream, none twice"
    assert all(i > snapshot.id for i in ids)
    statuses = [e.to_status for e in events if isinstance(e, JobEvent) and e.to_status]
    assert statuses[-1] is JobStatus.COMPLETED, (statuses, stack.log("worker"))
    # The worker may have claimed it before the stream opened: then the snapshot says running.
    assert JobStatus.RUNNING in [snapshot.job.status, *statuses]
    losses = [e.data["loss"] for e in events if isinstance(e, JobEvent) and "loss" in e.data]
    assert losses, "progress events carry the loss"
    # The stream missed nothing the history has (after the snapshot).
    history = [e.id for e in sdk.jobs.history(job.id) if e.id > snapshot.id]
    assert ids == history

    done = job.wait(timeout=60, raise_on_failure=True)
    assert done.status is JobStatus.COMPLETED
    assert done.progress == 100
    assert done.output_revision
    assert done.metrics["train_loss_last"] < done.metrics["train_loss_first"]

    def registered() -> ftd.RegisteredModel | None:
        return next((m for m in sdk.models.list(name=output) if m.job_id == job.id), None)

    model = wait_for(registered, stack, timeout=60, what="the model in the registry")
    assert model.name == output
    assert model.status is ftd.ModelStatus.REGISTERED
    assert sdk.models.deploy(model.id).status is ftd.ModelStatus.DEPLOYED
    assert [m.id for m in sdk.models.list(status="deployed", name=output)] == [model.id]
    assert sdk.models.undeploy(model.id).status is ftd.ModelStatus.RETIRED

    async def through_async_client() -> ftd.AsyncJob:
        async with AsyncClient(stack.base_url, token) as client:
            found = await client.jobs.get(job.id)
            return await found.wait(timeout=30)

    assert asyncio.run(through_async_client()).status is JobStatus.COMPLETED

    with pytest.raises(ftd.Conflict) as info:
        sdk.jobs.cancel(job.id)
    assert info.value.status == 409
    assert info.value.code


def test_errors_carry_the_api_code_and_status(stack: Stack, sdk: Client, tmp_path: Path) -> None:
    with pytest.raises(ftd.NotFound) as missing:
        sdk.jobs.get(uuid.uuid4())
    assert (missing.value.status, missing.value.code) == (404, "job_not_found")
    assert "was not found" in missing.value.message

    with pytest.raises(ftd.NotFound) as no_model:
        sdk.models.deploy(uuid.uuid4())
    assert no_model.value.code == "model_not_found"

    with pytest.raises(ftd.ValidationFailed) as invalid:
        sdk.jobs.create(
            job_type="classifier",
            base_model=offline_base_model(sdk, "classifier"),
            training_data_url="ftd://datasets/" + str(uuid.uuid4()),
            output_model="not a repo name",
            gpu_provider="local",
        )
    assert (invalid.value.status, invalid.value.code) == (422, "invalid_output_model")
    assert invalid.value.message

    with pytest.raises(ftd.ValidationFailed) as out_of_range:
        sdk.jobs.list(limit=100_000)
    assert (out_of_range.value.status, out_of_range.value.code) == (422, "validation_error")
    assert "limit" in out_of_range.value.message

    one_class = tmp_path / "one-class.csv"
    one_class.write_text("text,label\n" + "a fine review,positive\n" * 20)
    with pytest.raises(ftd.ValidationFailed) as refused:
        sdk.datasets.upload(one_class, job_type="classifier")
    assert refused.value.code == "invalid_dataset"
    assert refused.value.details["valid"] is False
    assert refused.value.details["errors"], "the report names the problems"

    with Client(stack.base_url, "not-a-token") as stranger, pytest.raises(ftd.Unauthorized) as who:
        stranger.jobs.list()
    assert (who.value.status, who.value.code) == (401, "invalid_token")


def test_the_event_stream_resumes_after_a_dropped_connection(
    stack: Stack, sdk: Client, token: str, tmp_path: Path
) -> None:
    job = start_job(sdk, tmp_path, "sdk-alice/resumed", epochs=4)
    proxy = DroppingProxy("127.0.0.1", int(stack.base_url.rsplit(":", 1)[1]))
    try:
        with Client(proxy.url, token, timeout=60) as through_proxy:
            items: list[JobEvent | JobSnapshot] = []
            dropped = 0
            for item in through_proxy.jobs.stream(job.id, timeout=JOB_TIMEOUT_S):
                items.append(item)
                progress = [i for i in items if isinstance(i, JobEvent) and i.kind == "progress"]
                if not dropped and len(progress) >= 2:
                    dropped = proxy.drop_all()
        assert dropped >= 1, "the connection was cut while the job was running"
        assert proxy.accepted >= 2, "the client reconnected"
    finally:
        proxy.close()

    snapshots = [i for i in items if isinstance(i, JobSnapshot)]
    assert len(snapshots) == 1, "the reconnect resumed from Last-Event-ID, not a new snapshot"
    ids = [i.id for i in items if isinstance(i, JobEvent)]
    assert len(ids) == len(set(ids)), "no event twice"
    history = [e.id for e in sdk.jobs.history(job.id) if e.id > snapshots[0].id]
    assert ids == history, "no event lost"
    last = items[-1]
    assert isinstance(last, JobEvent)
    assert last.to_status is JobStatus.COMPLETED
