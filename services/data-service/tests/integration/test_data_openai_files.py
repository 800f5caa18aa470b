"""/v1/files through a real uvicorn, driven by the `openai` package as its users drive it: upload,
list (paged), retrieve, delete, and each refusal as the typed error the package raises from
OpenAI's error shape."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy as sa
from data_service_testing import (
    AMQP_URL,
    classifier_csv,
    eventually,
    publish_event,
    stored_files,
    user_headers,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.enums import GPUProvider, JobType
from contracts.events import JobCreated
from data_service.config import Settings

pytestmark = pytest.mark.integration


def token(sub: str = "alice") -> str:
    return user_headers(sub)["Authorization"].removeprefix("Bearer ")


def chat_jsonl(n: int = 12) -> bytes:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "You reverse words."},
                {"role": "user", "content": f"word{i}"},
                {"role": "assistant", "content": f"{i}drow"},
            ]
        }
        for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture
async def alice(data_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{data_url}/v1", api_key=token("alice"), max_retries=0
    ) as client:
        yield client


@pytest.fixture
async def bob(data_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{data_url}/v1", api_key=token("bob"), max_retries=0
    ) as client:
        yield client


async def test_a_chat_file_is_uploaded_listed_retrieved_and_deleted(
    alice: openai.AsyncOpenAI, bob: openai.AsyncOpenAI, storage_dir: Path, data_db: AsyncEngine
) -> None:
    body = chat_jsonl()
    created = await alice.files.create(file=("train.jsonl", body), purpose="fine-tune")
    assert created.id.startswith("file-")
    dataset_id = uuid.UUID(created.id.removeprefix("file-"))
    assert created.object == "file"
    assert created.purpose == "fine-tune"
    assert created.status == "processed"
    assert created.bytes == len(body)
    assert created.filename == "train.jsonl"
    assert abs(created.created_at - datetime.now(UTC).timestamp()) < 60
    extra = created.model_extra or {}
    assert extra["ftd_job_types"] == ["llm_lora"]
    assert extra["ftd_rows"] == 12
    # The same dataset the platform's routes know, its bytes stored as sent.
    [path] = stored_files(storage_dir)
    assert path.name == str(dataset_id)
    assert path.read_bytes() == body

    got = await alice.files.retrieve(created.id)
    assert got.id == created.id
    assert got.bytes == len(body)
    with pytest.raises(openai.NotFoundError) as other:
        await bob.files.retrieve(created.id)
    assert other.value.code == "file_not_found"
    assert [f.id async for f in bob.files.list()] == []

    deleted = await alice.files.delete(created.id)
    assert deleted.id == created.id
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        await alice.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        await alice.files.delete(created.id)
    assert stored_files(storage_dir) == []
    async with data_db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM data.datasets")) == 0


async def test_files_are_listed_newest_first_and_paged_with_after(
    alice: openai.AsyncOpenAI,
) -> None:
    ids = []
    for i in range(3):
        f = await alice.files.create(file=(f"t{i}.csv", classifier_csv(12)), purpose="fine-tune")
        assert (f.model_extra or {})["ftd_job_types"] == ["classifier"]
        ids.append(f.id)

    first = await alice.files.list(limit=2)
    assert [f.id for f in first.data] == [ids[2], ids[1]]
    assert first.has_more is True
    second = await alice.files.list(limit=2, after=ids[1])
    assert [f.id for f in second.data] == [ids[0]]
    assert second.has_more is False
    # The package follows `after` itself when iterating.
    assert [f.id async for f in alice.files.list(limit=1)] == ids[::-1]
    assert [f.id async for f in alice.files.list(order="asc")] == ids
    assert [f.id async for f in alice.files.list(purpose="batch")] == []
    with pytest.raises(openai.NotFoundError) as unknown:
        await alice.files.list(after="file-" + str(uuid.uuid4()))
    assert unknown.value.param == "after"
    with pytest.raises(openai.BadRequestError) as malformed:
        await alice.files.list(after="ftjob-1")
    assert malformed.value.code == "validation_error"


async def test_refusals_come_as_openai_errors_and_store_nothing(
    alice: openai.AsyncOpenAI, data_url: str, storage_dir: Path, data_db: AsyncEngine
) -> None:
    with pytest.raises(openai.BadRequestError) as purpose:
        await alice.files.create(file=("a.jsonl", chat_jsonl()), purpose="assistants")
    assert purpose.value.code == "unsupported_purpose"
    assert purpose.value.param == "purpose"
    body = purpose.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"

    with pytest.raises(openai.BadRequestError) as malformed:
        await alice.files.create(
            file=("bad.jsonl", b'{"messages": "no"}\n' * 12), purpose="fine-tune"
        )
    assert malformed.value.code == "invalid_dataset"
    assert malformed.value.message

    with pytest.raises(openai.BadRequestError) as mismatch:
        await alice.files.create(
            file=("c.csv", classifier_csv(12)),
            purpose="fine-tune",
            extra_body={"ftd_job_type": "llm_lora"},
        )
    assert mismatch.value.code == "invalid_dataset", mismatch.value.message
    assert "llm_lora" in mismatch.value.message, mismatch.value.message

    with pytest.raises(openai.NotFoundError):
        await alice.files.retrieve("file-not-a-uuid")

    async with openai.AsyncOpenAI(
        base_url=f"{data_url}/v1", api_key="not-a-token", max_retries=0
    ) as stranger:
        with pytest.raises(openai.AuthenticationError) as denied:
            await stranger.files.list()
    assert isinstance(denied.value.body, dict)
    assert denied.value.body["type"] == "authentication_error"

    assert stored_files(storage_dir) == []
    async with data_db.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM data.datasets")) == 0


async def test_a_file_in_use_is_not_deleted_and_the_client_is_told_not_to_retry(
    alice: openai.AsyncOpenAI, data_url: str, data_settings: Settings
) -> None:
    f = await alice.files.create(file=("t.csv", classifier_csv(12)), purpose="fine-tune")
    dataset_id = uuid.UUID(f.id.removeprefix("file-"))
    job = JobCreated(
        job_id=uuid.uuid4(),
        user_id="alice",
        job_type=JobType.CLASSIFIER,
        gpu_provider=GPUProvider.LOCAL,
        base_model="m",
        output_model="alice/m",
        dataset_id=dataset_id,
        hyperparameters={},
        created_at=datetime.now(UTC),
    )
    await publish_event(AMQP_URL, data_settings.broker_prefix, job)
    async with httpx.AsyncClient(base_url=data_url, headers=user_headers()) as http:

        async def refused() -> httpx.Response | None:
            r = await http.delete(f"/v1/files/{f.id}")
            return r if r.status_code == 409 else None

        r = await eventually(refused)
    assert r.headers["x-should-retry"] == "false"
    assert r.json()["error"]["code"] == "dataset_in_use"
    with pytest.raises(openai.ConflictError):
        await alice.files.delete(f.id)
    assert (await alice.files.retrieve(f.id)).id == f.id
