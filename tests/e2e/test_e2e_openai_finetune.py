"""OpenAI's fine-tuning example through the gateway (:8000/v1), unchanged but for base_url and
api_key (a platform token): a chat JSONL file is uploaded with client.files.create, a job made
from it with client.fine_tuning.jobs.create on the offline tiny Llama, the CPU worker trains it,
and client.fine_tuning.jobs.retrieve reaches `succeeded` with the fine-tuned model named; its
events and checkpoint are listed.

Needs the gateway to route /v1/files to data-service and /v1/fine_tuning/ to job-api (before
model-server's /v1/). Marked `training` (scripts/install-training.sh)."""

import json
import os
import time

import openai
import pytest
from ftd_stack import Stack

pytest.importorskip("torch", reason="the training stack is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.training, pytest.mark.timeout(900)]

JOB_TIMEOUT_S = float(os.environ.get("FTD_E2E_JOB_TIMEOUT_S", "600"))
WORDS = ["hello", "world", "apple", "river", "green", "music", "table", "bread"]


def chat_file() -> bytes:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Reverse the word."},
                {"role": "user", "content": w},
                {"role": "assistant", "content": w[::-1]},
            ]
        }
        for w in WORDS * 3
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@pytest.fixture(scope="module")
def stack(dev_platform: Stack) -> Stack:
    """`make dev`'s platform (tests/conftest.py), whose CPU worker trains the tiny Llama."""
    return dev_platform


def test_the_openai_fine_tuning_example_trains_to_succeeded(stack: Stack) -> None:
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=stack.token("alice"))
    uploaded = client.files.create(file=("reverse.jsonl", chat_file()), purpose="fine-tune")
    assert uploaded.status == "processed"

    job = client.fine_tuning.jobs.create(
        training_file=uploaded.id,
        model="ftd-local/tiny-llama",
        suffix="reverse",
        hyperparameters={"n_epochs": 2, "max_seq_length": 64, "eval_split": 0.25},
    )
    assert job.status == "queued"

    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        stack.check_alive()
        job = client.fine_tuning.jobs.retrieve(job.id)
        if job.status in {"succeeded", "failed", "cancelled"} or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert job.status == "succeeded", (job.error, stack.log("worker"))
    assert job.fine_tuned_model == "alice/tiny-llama-reverse"
    assert job.finished_at is not None

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert any(e.type == "metrics" for e in events)
    assert events[-1].message == "Fine-tuning job created; waiting for a worker."
    [checkpoint] = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoint.fine_tuned_model_checkpoint.startswith("alice/tiny-llama-reverse")
    assert client.fine_tuning.jobs.list(limit=5).data[0].id == job.id
    # The file was in use until data-service heard that the job ended (an event away): then it goes.
    deadline = time.monotonic() + 30
    while True:
        try:
            assert client.files.delete(uploaded.id).deleted is True
            break
        except openai.ConflictError:
            assert time.monotonic() < deadline, "the file stayed in use after its job ended"
            time.sleep(1)
