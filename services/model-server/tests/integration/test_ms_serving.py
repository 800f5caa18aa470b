"""A real model-server over TCP, its models deployed and undeployed by events on the real broker,
called with the openai package and with httpx."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from model_server_testing import deployed, publish, put

from contracts.enums import JobType
from contracts.events import ModelDeleted
from model_server.config import Settings
from model_server.entrypoints.app import create_app
from servicekit.testing import eventually, served, user_headers

pytestmark = pytest.mark.integration

ALICE = user_headers("alice")
BOB = user_headers("bob")


def token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


@contextlib.asynccontextmanager
async def server(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        served(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        yield client


async def deploy(
    client: httpx.AsyncClient, prefix: str, store: Path, source: Path, name: str, job: JobType
) -> uuid.UUID:
    model_id, revision = uuid.uuid4(), uuid.uuid4().hex[:12]
    put(store, "alice", name, revision, source)
    await publish(
        prefix, deployed(model_id, user="alice", name=name, revision=revision, job_type=job)
    )

    async def loaded() -> bool:
        r = await client.get("/v1/models", headers=ALICE)
        return any(m["id"] == name and m["ftd_loaded"] for m in r.json()["data"])

    await eventually(loaded, timeout=60, interval=0.1)
    return model_id


def oai(client: httpx.AsyncClient, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=str(client.base_url).rstrip("/") + "/v1", api_key=key, max_retries=0
    )


async def test_embeddings_and_classification_load_on_deploy_and_leave_on_undeploy(
    ms_settings: Callable[..., Settings], ms_prefix: str, models: dict[str, Path]
) -> None:
    settings = ms_settings()
    store = settings.model_store_dir
    assert store is not None
    async with server(settings) as client:
        emb_id = await deploy(
            client, ms_prefix, store, models["embedding"], "alice/emb", JobType.EMBEDDING
        )
        await deploy(
            client, ms_prefix, store, models["classifier"], "alice/clf", JobType.CLASSIFIER
        )
        api = oai(client, token(ALICE))
        answer = await api.embeddings.create(model="alice/emb", input=["hello", "world"])
        assert [len(d.embedding) for d in answer.data] == [384, 384]
        # The vectors the model itself makes, not just vectors of the right length.
        from sentence_transformers import SentenceTransformer

        direct = SentenceTransformer(str(models["embedding"]), device="cpu").encode(["hello"])
        assert answer.data[0].embedding == pytest.approx([float(x) for x in direct[0]], abs=1e-5)
        empty = await client.post(
            "/v1/embeddings", headers=ALICE, json={"model": "alice/emb", "input": []}
        )
        assert empty.status_code == 400
        assert empty.json()["error"]["code"] == "empty_input"
        listed = await api.models.list()
        assert sorted(m.id for m in listed.data) == ["alice/clf", "alice/emb"]

        r = await client.post(
            "/v1/classify", headers=ALICE, json={"model": "alice/clf", "input": ["good", "bad"]}
        )
        assert r.status_code == 200, r.text
        rows = r.json()["data"]
        assert [row["index"] for row in rows] == [0, 1]
        assert all(set(row["scores"]) == {"negative", "positive"} for row in rows)
        assert all(abs(sum(row["scores"].values()) - 1) < 1e-4 for row in rows)

        # A classifier does not embed; errors are in OpenAI's shape.
        wrong = await client.post(
            "/v1/embeddings", headers=ALICE, json={"model": "alice/clf", "input": "x"}
        )
        assert wrong.status_code == 400
        assert wrong.json()["error"]["code"] == "wrong_model_type"
        assert set(wrong.json()["error"]) == {"message", "type", "param", "code"}

        # Another user cannot call alice's model, and does not see it.
        with pytest.raises(openai.NotFoundError) as refused:
            await oai(client, token(BOB)).embeddings.create(model="alice/emb", input="hi")
        assert refused.value.code == "model_not_deployed"
        assert (await client.get("/v1/models", headers=BOB)).json()["data"] == []

        # Undeploy: refused within seconds, no restart.
        await publish(
            ms_prefix,
            deployed(
                emb_id,
                user="alice",
                name="alice/emb",
                revision="x",
                job_type=JobType.EMBEDDING,
                deployed=False,
            ),
        )

        async def gone() -> bool:
            r = await client.post(
                "/v1/embeddings", headers=ALICE, json={"model": "alice/emb", "input": "x"}
            )
            return r.status_code == 404 and r.json()["error"]["code"] == "model_not_deployed"

        await eventually(gone, timeout=10)
        r = await client.post(
            "/v1/classify", headers=ALICE, json={"model": "alice/clf", "input": "x"}
        )
        assert r.status_code == 200


async def test_a_restarted_server_loads_what_its_projection_says_and_deletion_unloads(
    ms_settings: Callable[..., Settings], ms_prefix: str, models: dict[str, Path]
) -> None:
    settings = ms_settings()
    store = settings.model_store_dir
    assert store is not None
    async with server(settings) as client:
        model_id = await deploy(
            client, ms_prefix, store, models["embedding"], "alice/emb", JobType.EMBEDDING
        )
    # No event now: the new process reads its own table.
    async with server(ms_settings()) as client:

        async def loaded() -> bool:
            r = await client.get("/v1/models", headers=ALICE)
            return [m["ftd_loaded"] for m in r.json()["data"]] == [True]

        await eventually(loaded, timeout=60, interval=0.1)
        await publish(
            ms_prefix,
            ModelDeleted(model_id=model_id, user_id="alice", repo_id="alice/emb", version=1),
        )

        async def gone() -> bool:
            r = await client.get("/v1/models", headers=ALICE)
            return r.json()["data"] == []

        await eventually(gone, timeout=10)


async def test_lora_chat_and_completions_with_two_adapters_on_one_base(
    ms_settings: Callable[..., Settings], ms_prefix: str, models: dict[str, Path]
) -> None:
    settings = ms_settings()
    store = settings.model_store_dir
    assert store is not None
    async with server(settings) as client:
        for name, adapter in (("alice/chat-a", "lora_a"), ("alice/chat-b", "lora_b")):
            await deploy(client, ms_prefix, store, models[adapter], name, JobType.LLM_LORA)
        api = oai(client, token(ALICE))
        messages: list[Any] = [{"role": "user", "content": "What is two plus two?"}]
        a = await api.chat.completions.create(
            model="alice/chat-a", messages=messages, max_tokens=8, temperature=0
        )
        b = await api.chat.completions.create(
            model="alice/chat-b", messages=messages, max_tokens=8, temperature=0
        )
        assert a.choices[0].finish_reason in {"stop", "length"}
        assert a.usage is not None
        assert 0 < a.usage.completion_tokens <= 8
        # The same base, two adapters: greedy answers differ with the adapter.
        again = await api.chat.completions.create(
            model="alice/chat-a", messages=messages, max_tokens=8, temperature=0
        )
        assert again.choices[0].message.content == a.choices[0].message.content
        assert a.choices[0].message.content != b.choices[0].message.content

        done = await api.completions.create(
            model="alice/chat-b", prompt="The sea", max_tokens=5, temperature=0
        )
        assert done.object == "text_completion"

        # Streaming with the client: chunks, the role first, the finish reason last.
        stream = await api.chat.completions.create(
            model="alice/chat-a", messages=messages, max_tokens=8, temperature=0, stream=True
        )
        chunks = [c async for c in stream]
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason in {"stop", "length"}
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == a.choices[0].message.content

        # And on the wire: SSE `data:` lines ending with [DONE].
        body = {"model": "alice/chat-a", "messages": messages, "max_tokens": 4, "stream": True}
        async with client.stream("POST", "/v1/chat/completions", headers=ALICE, json=body) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            data = [line[5:].strip() async for line in r.aiter_lines() if line.startswith("data:")]
        assert data[-1] == "[DONE]"
        assert json.loads(data[0])["object"] == "chat.completion.chunk"


async def test_api_keys_are_created_used_listed_and_revoked(
    ms_settings: Callable[..., Settings], ms_prefix: str, models: dict[str, Path]
) -> None:
    settings = ms_settings()
    store = settings.model_store_dir
    assert store is not None
    async with server(settings) as client:
        await deploy(client, ms_prefix, store, models["embedding"], "alice/emb", JobType.EMBEDDING)
        created = await client.post("/api/keys", headers=ALICE, json={"name": "ci"})
        assert created.status_code == 201, created.text
        key = created.json()["data"]["key"]
        key_id = created.json()["data"]["id"]
        assert key.startswith(f"ftdk_{key_id}_")

        answer = await oai(client, key).embeddings.create(model="alice/emb", input="hi")
        assert len(answer.data[0].embedding) == 384
        listed = (await client.get("/api/keys", headers=ALICE)).json()["data"]
        assert [(k["id"], k["active"]) for k in listed] == [(key_id, True)]
        assert "key" not in listed[0]
        assert key not in json.dumps(listed)

        # A key cannot manage keys; another user cannot revoke it.
        assert (
            await client.get("/api/keys", headers={"Authorization": f"Bearer {key}"})
        ).status_code == 401
        assert (await client.delete(f"/api/keys/{key_id}", headers=BOB)).status_code == 404
        assert (await client.delete(f"/api/keys/{key_id}", headers=ALICE)).status_code == 204

        with pytest.raises(openai.AuthenticationError) as refused:
            await oai(client, key).embeddings.create(model="alice/emb", input="hi")
        assert refused.value.code == "invalid_api_key"
        bad = await client.get("/v1/models", headers={"Authorization": "Bearer ftdk_nope"})
        assert bad.status_code == 401
        assert bad.json()["error"]["type"] == "authentication_error"


async def test_concurrent_requests_coalesced_into_one_forward_each_get_their_own_answer(
    ms_settings: Callable[..., Settings], ms_prefix: str, models: dict[str, Path]
) -> None:
    settings = ms_settings()
    store = settings.model_store_dir
    assert store is not None
    async with server(settings) as client:
        await deploy(client, ms_prefix, store, models["embedding"], "alice/emb", JobType.EMBEDDING)
        await deploy(
            client, ms_prefix, store, models["classifier"], "alice/clf", JobType.CLASSIFIER
        )
        inputs: list[str | list[str]] = [
            "a short one",
            ["two texts", "of which the second is noticeably longer than the first one"],
            "x",
            "the quick brown fox jumps over the lazy dog",
            ["", "an empty text sits beside this one"],
        ] * 3

        async def call(route: str, model: str, texts: str | list[str]) -> dict[str, Any]:
            r = await client.post(
                f"/v1/{route}", headers=ALICE, json={"model": model, "input": texts}
            )
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        for route, model, field in (
            ("embeddings", "alice/emb", "embedding"),
            ("classify", "alice/clf", "scores"),
        ):
            alone = [await call(route, model, texts) for texts in inputs]
            together = await asyncio.gather(*(call(route, model, t) for t in inputs))
            for one, shared in zip(alone, together, strict=True):
                assert shared["usage"] == one["usage"]
                assert len(shared["data"]) == len(one["data"])
                for a, b in zip(one["data"], shared["data"], strict=True):
                    assert b["index"] == a["index"]
                    values = a[field] if field == "embedding" else list(a[field].values())
                    shared_values = b[field] if field == "embedding" else list(b[field].values())
                    assert shared_values == pytest.approx(values, abs=1e-4)
            # Different texts give different answers: a shifted mapping would not pass above.
            assert alone[0]["data"][0][field] != alone[2]["data"][0][field]


async def test_a_key_revoked_through_another_replica_is_refused_once_its_cached_row_expires(
    ms_settings: Callable[..., Settings],
    ms_prefix: str,
    models: dict[str, Path],
    ms_db: Any,
) -> None:
    settings = ms_settings(api_key_cache_seconds=0.5)
    store = settings.model_store_dir
    assert store is not None
    async with server(settings) as client:
        await deploy(client, ms_prefix, store, models["embedding"], "alice/emb", JobType.EMBEDDING)
        created = await client.post("/api/keys", headers=ALICE, json={"name": "ci"})
        key, key_id = created.json()["data"]["key"], created.json()["data"]["id"]
        body = {"model": "alice/emb", "input": "hi"}
        auth = {"Authorization": f"Bearer {key}"}
        assert (await client.post("/v1/embeddings", headers=auth, json=body)).status_code == 200
        # The row is cached now; the secret is still checked on every request.
        wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
        r = await client.post(
            "/v1/embeddings", headers={"Authorization": f"Bearer {wrong}"}, json=body
        )
        assert r.status_code == 401
        # Another replica revokes it: only the database changes, this process is not told.
        async with ms_db.begin() as conn:
            await conn.execute(
                sa.text("UPDATE model_server.api_keys SET revoked_at = now() WHERE id = :id"),
                {"id": key_id},
            )

        async def refused() -> bool:
            r = await client.post("/v1/embeddings", headers=auth, json=body)
            return r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"

        await eventually(refused, timeout=10, interval=0.1)
