"""Calling a deployed model through the SDK and the `ftd` command on the real stack: a classifier
the CPU worker trained is deployed, classified with `Client.models.classify` (and the async
client), and with `ftd models call NAME --text ...` (a readable table, or --json); a name with no
deployed version exits 1 naming the commands that fix it; a classifier given no --text is a usage
error."""

import asyncio
import json
import subprocess
from pathlib import Path

import ftd
import pytest
from ftd import AsyncClient, Client
from ftd_stack import Stack
from sdk_testing import (
    JOB_TIMEOUT_S,
    POSITIVE,
    ftd_command,
    offline_base_model,
    start_job,
    wait_for,
)
from test_e2e_training import CASES

pytest.importorskip("torch", reason="the training stack is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.training, pytest.mark.timeout(900)]

OUTPUT = "sdk-alice/called"


def ftd_cli(stack: Stack, token: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": str(Path(ftd_command()).parent) + ":/usr/bin:/bin",
        "HOME": str(home),
        "FTD_CONFIG_DIR": str(home / "config"),
        "FTD_BASE_URL": stack.base_url,
        "FTD_TOKEN": token,
        "LANG": "C.UTF-8",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [ftd_command(), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_deployed_classifier_answers_the_sdk_and_the_cli(
    stack: Stack, sdk: Client, token: str, tmp_path: Path
) -> None:
    job = start_job(sdk, tmp_path, OUTPUT, epochs=1)
    job.wait(timeout=JOB_TIMEOUT_S, raise_on_failure=True)

    def registered() -> ftd.RegisteredModel | None:
        return next((m for m in sdk.models.list(name=OUTPUT) if m.job_id == job.id), None)

    model = wait_for(registered, stack, timeout=60, what="the model in the registry")

    # Not deployed yet: the CLI says so and names the commands that fix it.
    refused = ftd_cli(stack, token, tmp_path, "models", "call", OUTPUT, "--text", "hi")
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert "model_not_deployed" in refused.stderr
    assert "ftd models deploy" in refused.stderr
    with pytest.raises(ftd.NotFound) as raised:
        sdk.models.classify(OUTPUT, "hi")
    assert raised.value.code == "model_not_deployed"

    sdk.models.deploy(model.id)
    # Until it is loaded, a call meets 503 model_loading (the client retries it a few times).
    texts = [POSITIVE[0], "the food was cold and the service terrible"]
    result = wait_for(lambda: _classify(sdk, texts), stack, timeout=120, what=f"{OUTPUT} to answer")
    labels = {"positive", "negative"}
    assert [c.index for c in result.data] == [0, 1]
    for item in result.data:
        assert item.label in labels
        assert set(item.scores) == labels
        assert abs(sum(item.scores.values()) - 1) < 1e-3
        assert item.score == max(item.scores.values())
    assert result.model == OUTPUT

    async def through_async_client() -> ftd.Classifications:
        async with AsyncClient(stack.base_url, token) as client:
            return await client.models.classify(OUTPUT, texts)

    assert [c.label for c in asyncio.run(through_async_client()).data] == [
        c.label for c in result.data
    ]

    shown = ftd_cli(stack, token, tmp_path, "models", "call", OUTPUT, *_texts(texts))
    assert shown.returncode == 0, (shown.stdout, shown.stderr)
    assert POSITIVE[0] in shown.stdout
    assert result.data[0].label in shown.stdout

    as_json = ftd_cli(stack, token, tmp_path, "models", "call", OUTPUT, *_texts(texts), "--json")
    assert as_json.returncode == 0, (as_json.stdout, as_json.stderr)
    answer = json.loads(as_json.stdout)
    assert [d["label"] for d in answer["data"]] == [c.label for c in result.data]

    no_text = ftd_cli(stack, token, tmp_path, "models", "call", OUTPUT)
    assert no_text.returncode == 2, (no_text.stdout, no_text.stderr)
    assert "--text" in no_text.stderr

    sdk.models.undeploy(model.id)


def _texts(texts: list[str]) -> list[str]:
    return [arg for text in texts for arg in ("--text", text)]


def _classify(sdk: Client, texts: list[str]) -> ftd.Classifications | None:
    try:
        return sdk.models.classify(OUTPUT, texts)
    except ftd.NotFound:
        return None  # the deploy's event has not reached model-server yet
    except ftd.ServiceUnavailable as exc:
        if exc.code != "model_loading":
            raise
        return None  # the first load imports the inference stack: longer than the retries


def test_a_deployed_lora_model_chats_whole_and_streamed(
    stack: Stack, sdk: Client, token: str, tmp_path: Path
) -> None:
    """A LoRA adapter of the offline tiny Llama: `Client.models.chat` answers whole and streams
    the same text piece by piece (greedy); `ftd models call --message` prints it as it comes."""
    filename, body = CASES["llm_lora"]["data"]()
    path = tmp_path / filename
    path.write_bytes(body)
    dataset = sdk.datasets.upload(path, job_type="llm_lora")
    assert isinstance(dataset, ftd.Dataset)
    output = "sdk-alice/chatty"
    job = sdk.jobs.create(
        job_type="llm_lora",
        base_model=offline_base_model(sdk, "llm_lora"),
        training_data_url=dataset.training_data_url,
        output_model=output,
        gpu_provider="local",
        hyperparameters=CASES["llm_lora"]["hyperparameters"],
    )
    job.wait(timeout=JOB_TIMEOUT_S, raise_on_failure=True)
    model = wait_for(
        lambda: next((m for m in sdk.models.list(name=output) if m.job_id == job.id), None),
        stack,
        timeout=60,
        what="the adapter in the registry",
    )
    sdk.models.deploy(model.id)
    messages = [{"role": "user", "content": "Reverse the word.\nhello"}]

    def answered() -> ftd.ChatCompletion | None:
        try:
            return sdk.models.chat(output, messages, max_tokens=12, temperature=0)
        except (ftd.NotFound, ftd.ServiceUnavailable):
            return None  # the deploy is on its way to model-server, or the adapter loads

    whole = wait_for(answered, stack, timeout=180, what=f"{output} to answer")
    assert whole.model == output
    assert whole.choices[0].finish_reason in {"stop", "length"}
    assert 0 < whole.usage.completion_tokens <= 12
    pieces = list(sdk.models.chat(output, messages, stream=True, max_tokens=12, temperature=0))
    assert pieces, "the stream carried text"
    assert "".join(pieces) == whole.content

    shown = ftd_cli(
        stack,
        token,
        tmp_path,
        "models",
        "call",
        output,
        "--message",
        "Reverse the word.\nhello",
        "--max-tokens",
        "12",
        "--temperature",
        "0",
    )
    assert shown.returncode == 0, (shown.stdout, shown.stderr)
    assert shown.stdout == whole.content + "\n", "the answer, as it came, then a new line"
    as_json = ftd_cli(stack, token, tmp_path, "models", "call", output, "--message", "hi", "--json")
    assert as_json.returncode == 0, (as_json.stdout, as_json.stderr)
    assert json.loads(as_json.stdout)["object"] == "chat.completion"
    # A chat model given texts is a usage error that says what to give.
    texts = ftd_cli(stack, token, tmp_path, "models", "call", output, "--text", "hi")
    assert texts.returncode == 2, (texts.stdout, texts.stderr)
    assert "--message" in texts.stderr
    sdk.models.undeploy(model.id)
