"""Each job type trains for real on CPU, on tiny data, with the offline base models.

Marked `training`: it needs the training stack (scripts/install-training.sh) and is skipped, with
that reason, where torch is not importable. Nothing is downloaded (HF_HUB_OFFLINE=1; the MiniLM
ships in a package, the tiny Llama is built locally).
"""

import csv
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

torch = pytest.importorskip("torch", reason="the training stack is not installed")

from contracts.catalogue import OFFLINE_MINILM, OFFLINE_TINY_LLAMA  # noqa: E402
from contracts.enums import JobPhase, JobType  # noqa: E402
from gpu_worker.adapters.publish import LocalCheckpointStore, publish_model  # noqa: E402
from gpu_worker.adapters.publish.local_store import model_folder  # noqa: E402
from gpu_worker.domain.errors import StopRequested, UserDataError  # noqa: E402
from gpu_worker.domain.training import TrainRequest, TrainResult  # noqa: E402
from gpu_worker.training.api import train  # noqa: E402

pytestmark = [pytest.mark.training, pytest.mark.timeout(300)]


class Recorder:
    """A Reporter that records every call; stops once `stop_after_step` has been reported."""

    def __init__(self, stop_after_step: int | None = None):
        self.events: list[dict[str, Any]] = []
        self.stop_after_step = stop_after_step
        self._stop = threading.Event()

    def progress(
        self,
        *,
        progress: float,
        phase: JobPhase = JobPhase.TRAINING,
        step: int | None = None,
        total_steps: int | None = None,
        epoch: float | None = None,
        loss: float | None = None,
        metrics: Mapping[str, float] | None = None,
        log_lines: Sequence[str] = (),
        eta_seconds: float | None = None,
    ) -> None:
        self.events.append(
            {
                "progress": progress,
                "phase": phase,
                "step": step,
                "total_steps": total_steps,
                "loss": loss,
                "metrics": dict(metrics or {}),
                "log_lines": list(log_lines),
                "eta_seconds": eta_seconds,
            }
        )
        if self.stop_after_step is not None and step is not None and step >= self.stop_after_step:
            self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def steps(self) -> list[int]:
        return [e["step"] for e in self.events if e["step"] is not None]


@pytest.fixture(scope="module", autouse=True)
def offline_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import huggingface_hub.constants

    previous = huggingface_hub.constants.HF_HUB_OFFLINE
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    os.environ["FTD_TINY_LLAMA_DIR"] = str(tmp_path_factory.mktemp("models") / "tiny-llama")
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield
    huggingface_hub.constants.HF_HUB_OFFLINE = previous
    os.environ.pop("FTD_TINY_LLAMA_DIR", None)


def request(
    tmp_path: Path,
    job_type: JobType,
    base: str,
    data: Path,
    hp: dict[str, Any],
    resume_from: Path | None = None,
    work: str = "work",
) -> TrainRequest:
    return TrainRequest(
        job_id="job-1",
        attempt=1 if resume_from is None else 2,
        job_type=job_type,
        base_model=base,
        output_model="alice/model",
        hyperparameters=hp,
        data_path=data,
        data_format="jsonl" if data.suffix == ".jsonl" else "csv",
        work_dir=tmp_path / work,
        resume_from=resume_from,
    )


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


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
WORDS = ["hello", "world", "apple", "river", "green", "music", "table", "bread"]


def assert_reported_training(rec: Recorder, result: TrainResult) -> None:
    training = [e for e in rec.events if e["phase"] is JobPhase.TRAINING and e["step"]]
    assert training, "no training progress was reported"
    last = training[-1]
    assert last["total_steps"] == int(result.metrics["global_step"])
    assert any(e["loss"] is not None for e in training)
    assert any("learning_rate" in e["metrics"] for e in training)
    assert any(e["eta_seconds"] is not None for e in training)
    assert any(e["log_lines"] for e in training)
    assert any(e["phase"] is JobPhase.EVALUATING for e in rec.events)
    assert result.metrics["train_loss_last"] < result.metrics["train_loss_first"]


def test_embedding_pairs_train_load_and_encode(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    rows = [[f"what is {k}?", v] for k, v in TOPICS.items()] * 2
    data = write_csv(tmp_path / "pairs.csv", ["anchor", "positive"], rows)
    rec = Recorder()
    hp = {
        "epochs": 2,
        "batch_size": 4,
        "learning_rate": 1e-4,
        "eval_split": 0.25,
        "max_seq_length": 32,
    }
    result = train(request(tmp_path, JobType.EMBEDDING, OFFLINE_MINILM, data, hp), rec)

    assert_reported_training(rec, result)
    for metrics in (result.metrics, result.baseline_metrics):
        assert 0.0 <= metrics["retrieval_accuracy@1"] <= 1.0
        assert 0.0 <= metrics["retrieval_mrr@10"] <= 1.0
    assert result.data_stats["layout"] == "pairs"

    published = publish_model(
        result,
        output_model="alice/emb",
        job_type=JobType.EMBEDDING,
        base_model=OFFLINE_MINILM,
        hyperparameters=hp,
        hf_token=None,
        store_dir=tmp_path / "store",
    )
    assert published.uri == f"local://alice/emb@{published.revision}"
    stored = model_folder(tmp_path / "store", None, "alice/emb", published.revision)
    model = SentenceTransformer(str(stored), device="cpu")
    vectors = model.encode(["what is a cat?", "a small pet that purrs"])
    assert vectors.shape == (2, 384)
    assert "retrieval_mrr@10" in (stored / "README.md").read_text()


def test_embedding_scored_pairs_use_cosent(tmp_path: Path) -> None:
    items = list(TOPICS.items())
    rows = [[f"about {k}", v, 1.0] for k, v in items] + [
        [f"about {k}", items[(i + 3) % len(items)][1], 0.0] for i, (k, _) in enumerate(items)
    ]
    data = write_csv(tmp_path / "sts.csv", ["sentence1", "sentence2", "score"], rows)
    hp = {
        "epochs": 1,
        "batch_size": 8,
        "learning_rate": 5e-5,
        "eval_split": 0.25,
        "max_seq_length": 32,
    }
    result = train(request(tmp_path, JobType.EMBEDDING, OFFLINE_MINILM, data, hp), Recorder())
    assert result.data_stats["layout"] == "scored_pairs"
    assert "spearman_cosine" in result.metrics
    assert "spearman_cosine" in result.baseline_metrics


def test_classifier_trains_and_predicts_its_labels(tmp_path: Path) -> None:
    from transformers import pipeline

    pos = [
        "I loved this film",
        "great value, would buy again",
        "wonderful tasty food",
        "a delightful experience",
        "excellent quality",
        "really enjoyed it",
    ]
    neg = [
        "the food was cold",
        "terrible service",
        "broken on arrival",
        "a waste of money",
        "awful rude staff",
        "very disappointing",
    ]
    rows = [[t, "positive"] for t in pos] + [[t, "negative"] for t in neg]
    data = write_csv(tmp_path / "cls.csv", ["text", "label"], rows * 2)
    rec = Recorder()
    hp = {
        "epochs": 3,
        "batch_size": 8,
        "learning_rate": 5e-4,
        "eval_split": 0.25,
        "max_seq_length": 32,
    }
    result = train(request(tmp_path, JobType.CLASSIFIER, OFFLINE_MINILM, data, hp), rec)

    assert_reported_training(rec, result)
    for metrics in (result.metrics, result.baseline_metrics):
        assert {"accuracy", "f1_macro", "eval_loss"} <= metrics.keys()
    assert result.data_stats["labels"] == ["negative", "positive"]

    classify = pipeline("text-classification", model=str(result.model_dir), device="cpu")
    assert classify("a delightful film")[0]["label"] in {"positive", "negative"}
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["label2id"] == {"negative": 0, "positive": 1}


def lora_rows(n: int) -> list[dict[str, str]]:
    return [
        {"instruction": "Reverse the word.", "input": w, "output": w[::-1]} for w in (WORDS * 4)[:n]
    ]


LORA_HP = {
    "epochs": 3,
    "batch_size": 4,
    "learning_rate": 5e-3,
    "eval_split": 0.25,
    "max_seq_length": 64,
    "gradient_accumulation_steps": 1,
    "lora_r": 8,
    "lora_alpha": 16,
}


def test_lora_instructions_train_and_the_adapter_generates(tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = write_jsonl(tmp_path / "sft.jsonl", lora_rows(16))
    rec = Recorder()
    result = train(request(tmp_path, JobType.LLM_LORA, OFFLINE_TINY_LLAMA, data, LORA_HP), rec)

    assert_reported_training(rec, result)
    assert result.metrics["eval_loss"] < result.baseline_metrics["eval_loss"]
    assert result.data_stats["chat_template"] is True
    assert result.data_stats["activation_checkpointing"] is False
    assert any(
        "activation checkpointing off (CPU)" in line for e in rec.events for line in e["log_lines"]
    )
    assert len(result.samples) == 3
    adapter = json.loads((result.model_dir / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == OFFLINE_TINY_LLAMA

    base_dir = os.environ["FTD_TINY_LLAMA_DIR"]
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir), str(result.model_dir)
    )
    tokenizer = AutoTokenizer.from_pretrained(str(result.model_dir))
    inputs = tokenizer("<|user|>\nReverse the word.", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_lora_chat_messages_logged_to_wandb_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_PROJECT", "ftd-tests")
    monkeypatch.setenv("WANDB_SILENT", "true")
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"say {w} twice"},
                {"role": "assistant", "content": f"{w} {w}"},
            ]
        }
        for w in WORDS
    ]
    data = write_jsonl(tmp_path / "chat.jsonl", rows)
    # Checkpointing asked for: the GPU path's recompute with a PEFT model, exercised on CPU.
    hp = LORA_HP | {"gradient_checkpointing": True}
    result = train(request(tmp_path, JobType.LLM_LORA, OFFLINE_TINY_LLAMA, data, hp), Recorder())
    assert result.data_stats["layout"] == "chat"
    assert result.data_stats["activation_checkpointing"] is True
    # Gradients reached the adapter through the recomputed layers: LoRA's B starts at zero.
    from safetensors.torch import load_file

    weights = load_file(str(result.model_dir / "adapter_model.safetensors"))
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b
    assert all(t.abs().sum() > 0 for t in lora_b)
    assert (result.model_dir / "adapter_model.safetensors").is_file()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1  # the Trainer logged this job to W&B (offline: no run page URL)
    assert result.logs_url is None


def test_cancel_stops_within_a_step_and_a_retry_resumes(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "sft.jsonl", lora_rows(32))
    hp = LORA_HP | {"eval_split": 0.0, "batch_size": 2}
    rec = Recorder(stop_after_step=2)
    with pytest.raises(StopRequested) as stopped:
        train(request(tmp_path, JobType.LLM_LORA, OFFLINE_TINY_LLAMA, data, hp), rec)
    checkpoint = stopped.value.checkpoint
    assert checkpoint is not None
    stopped_at = int(checkpoint.name.removeprefix("checkpoint-"))
    assert 2 <= stopped_at <= 3  # the step that saw the stop, or the very next one
    assert max(rec.steps()) == stopped_at
    total = next(e["total_steps"] for e in rec.events if e["total_steps"])
    assert stopped_at < total

    # The runtime saves the checkpoint where the next attempt finds it.
    store = LocalCheckpointStore(tmp_path / "checkpoints")
    store.save("job-1", checkpoint)
    resume_from = store.fetch_latest("job-1", tmp_path / "attempt2" / "incoming")
    assert resume_from is not None

    rec2 = Recorder()
    result = train(
        request(
            tmp_path,
            JobType.LLM_LORA,
            OFFLINE_TINY_LLAMA,
            data,
            hp,
            resume_from=resume_from,
            work="attempt2",
        ),
        rec2,
    )
    assert result.metrics["global_step"] == total
    assert min(rec2.steps()) >= stopped_at  # counting goes on from the checkpoint
    assert any(
        f"resuming at step {stopped_at}" in line for e in rec2.events for line in e["log_lines"]
    )


def test_bad_data_and_bad_hyperparameters_are_user_errors(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "bad.csv", ["text"], [["a"], ["b"], ["c"], ["d"]])
    with pytest.raises(UserDataError, match="'label'"):
        train(request(tmp_path, JobType.CLASSIFIER, OFFLINE_MINILM, data, {}), Recorder())
    good = write_csv(tmp_path / "ok.csv", ["text", "label"], [["a", "x"], ["b", "y"]] * 2)
    with pytest.raises(UserDataError, match="learning_rate"):
        train(
            request(tmp_path, JobType.CLASSIFIER, OFFLINE_MINILM, good, {"learning_rate": 5.0}),
            Recorder(),
        )
