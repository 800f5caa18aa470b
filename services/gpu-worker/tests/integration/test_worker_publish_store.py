"""Storing a trained model and checkpoints on disk (temporary folders only, no broker/database).

The Hub is replaced by a recording stand-in for HfApi: the retry logic is ours, the HTTP client is
huggingface_hub's and is not exercised here.
"""

from pathlib import Path
from typing import Any

import pytest

from contracts.enums import JobType
from gpu_worker.publish import LocalCheckpointStore, PublishError, publish_model
from gpu_worker.publish.local_store import content_revision
from gpu_worker.training.api import TrainResult


def a_result(tmp_path: Path) -> TrainResult:
    model_dir = tmp_path / "work" / "model"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text('{"model_type": "bert"}')
    (model_dir / "model.safetensors").write_bytes(b"\x00" * 1024)
    return TrainResult(
        model_dir=model_dir,
        metrics={"accuracy": 0.9},
        baseline_metrics={"accuracy": 0.5},
        data_stats={"rows": 10},
    )


PUBLISH_ARGS: dict[str, Any] = {
    "output_model": "alice/sentiment",
    "job_type": JobType.CLASSIFIER,
    "base_model": "xlm-roberta-base",
    "hyperparameters": {"epochs": 1},
}


class _Commit:
    def __init__(self, oid: str):
        self.oid = oid


class FlakyHub:
    """Fails the first `failures` uploads with a connection error, then accepts."""

    def __init__(self, failures: int):
        self.failures = failures
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.uploaded: list[set[str]] = []

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs: Any) -> _Commit:
        self.calls.append(("upload_folder", kwargs))
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("connection reset by peer")
        folder = Path(kwargs["folder_path"])
        self.uploaded.append({p.name for p in folder.iterdir()})
        return _Commit("0123456789abcdef0123456789abcdef01234567")


def test_local_store_layout_card_and_idempotence(tmp_path: Path) -> None:
    result = a_result(tmp_path)
    store = tmp_path / "models"
    first = publish_model(result, **PUBLISH_ARGS, hf_token=None, store_dir=store)
    assert first.store == "local"
    assert first.repo_id == "alice/sentiment"
    assert first.revision == content_revision(result.model_dir)
    target = store / "alice" / "sentiment" / first.revision
    assert first.uri == target.resolve().as_uri()
    assert {p.name for p in target.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    assert "| accuracy | 0.5000 | 0.9000 |" in (target / "README.md").read_text()
    again = publish_model(result, **PUBLISH_ARGS, hf_token=None, store_dir=store)
    assert again == first  # same artifact, same version: a repeated publish is harmless


def test_hub_push_retries_a_transient_failure_within_the_call(tmp_path: Path) -> None:
    hub = FlakyHub(failures=2)
    published = publish_model(
        a_result(tmp_path),
        **PUBLISH_ARGS,
        hf_token="hf_x",
        store_dir=tmp_path / "s",
        hub_api=hub,
        attempts=3,
        max_wait_s=0.01,  # type: ignore[arg-type]
    )
    assert published.store == "hub"
    assert published.uri == "hf://alice/sentiment@0123456789abcdef0123456789abcdef01234567"
    assert [c[0] for c in hub.calls].count("upload_folder") == 3
    create = next(kw for name, kw in hub.calls if name == "create_repo")
    assert create["private"] is True
    assert create["exist_ok"] is True
    assert hub.uploaded == [{"config.json", "model.safetensors", "README.md"}]


def test_failed_push_keeps_the_artifact_and_a_later_push_succeeds(tmp_path: Path) -> None:
    result = a_result(tmp_path)
    hub = FlakyHub(failures=1)
    with pytest.raises(PublishError) as failed:
        publish_model(
            result,
            **PUBLISH_ARGS,
            hf_token="hf_x",
            store_dir=tmp_path / "s",
            hub_api=hub,
            attempts=1,
            max_wait_s=0.01,
        )  # type: ignore[arg-type]
    assert failed.value.retryable
    assert (result.model_dir / "model.safetensors").is_file()  # nothing to retrain
    published = publish_model(
        result,
        **PUBLISH_ARGS,
        hf_token="hf_x",
        store_dir=tmp_path / "s",
        hub_api=hub,
        attempts=1,
        max_wait_s=0.01,
    )  # type: ignore[arg-type]
    assert published.revision.startswith("0123")


def test_a_refusal_is_not_retried(tmp_path: Path) -> None:
    class Forbidden(Exception):
        response = type("R", (), {"status_code": 403})()

    class RefusingHub(FlakyHub):
        def create_repo(self, repo_id: str, **kwargs: Any) -> None:
            self.calls.append(("create_repo", kwargs))
            raise Forbidden("no write access")

    hub = RefusingHub(failures=0)
    with pytest.raises(PublishError) as failed:
        publish_model(
            a_result(tmp_path),
            **PUBLISH_ARGS,
            hf_token="hf_x",
            store_dir=tmp_path / "s",
            hub_api=hub,
            attempts=4,
            max_wait_s=0.01,
        )  # type: ignore[arg-type]
    assert not failed.value.retryable
    assert len(hub.calls) == 1


def test_bad_output_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PublishError, match="owner/name"):
        publish_model(
            a_result(tmp_path),
            **{**PUBLISH_ARGS, "output_model": "../etc"},
            hf_token=None,
            store_dir=tmp_path / "s",
        )


def test_local_checkpoint_store_keeps_the_latest(tmp_path: Path) -> None:
    store = LocalCheckpointStore(tmp_path / "ckpt", keep=2)
    assert store.fetch_latest("job-1", tmp_path / "into") is None
    for step in (3, 10, 6):
        ckpt = tmp_path / "work" / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
        store.save("job-1", ckpt)
    latest = store.fetch_latest("job-1", tmp_path / "attempt2")
    assert latest == tmp_path / "attempt2" / "checkpoint-10"
    assert (latest / "trainer_state.json").read_text() == '{"global_step": 10}'
    assert sorted(p.name for p in (tmp_path / "ckpt" / "job-1").iterdir()) == [
        "checkpoint-10",
        "checkpoint-6",
    ]
    store.discard("job-1")
    assert store.fetch_latest("job-1", tmp_path / "attempt3") is None
    with pytest.raises(ValueError, match="checkpoint folder"):
        store.save("../x", tmp_path / "work" / "checkpoint-3")
