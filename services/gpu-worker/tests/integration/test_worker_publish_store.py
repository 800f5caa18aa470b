"""Storing a trained model and checkpoints on disk (temporary folders only, no broker/database).

The Hub is replaced by a recording stand-in for HfApi: the retry logic is ours, the HTTP client is
huggingface_hub's and is not exercised here. The local store keeps a folder per owner and reports
a model by its store URI, never by its path.
"""

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest

from contracts.enums import JobType
from contracts.rpc import DataTicket, JobSpec
from contracts.store import owner_key
from gpu_worker.adapters.publish import HubCheckpointStore, LocalCheckpointStore, publish_model
from gpu_worker.adapters.publish import push as push_module
from gpu_worker.adapters.publish.local_store import content_revision
from gpu_worker.config import WorkerSettings
from gpu_worker.domain.errors import PublishError
from gpu_worker.domain.training import TrainRequest, TrainResult
from gpu_worker.entrypoints.toolkit import real_toolkit

ALICE, BOB = owner_key("alice"), owner_key("bob")


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


class Conflict(Exception):
    """What huggingface_hub raises for an existing repository created with exist_ok=False."""

    response = type("R", (), {"status_code": 409})()


class FlakyHub:
    """Fails the first `failures` uploads with a connection error, then accepts. Knows which
    repositories exist (`repos`), as the Hub does."""

    def __init__(self, failures: int, repos: set[str] | None = None):
        self.failures = failures
        self.repos = set() if repos is None else repos
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.uploaded: list[set[str]] = []

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        if repo_id in self.repos and not kwargs.get("exist_ok"):
            raise Conflict(f"{repo_id} exists")
        self.repos.add(repo_id)

    def create_branch(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

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
    first = publish_model(result, **PUBLISH_ARGS, hf_token=None, store_dir=store, owner_key=ALICE)
    assert first.store == "local"
    assert first.repo_id == "alice/sentiment"
    assert first.revision == content_revision(result.model_dir)
    assert first.created_repo is False
    target = store / ALICE / "alice" / "sentiment" / first.revision
    # The report names the model in the store, never by this machine's path.
    assert first.uri == f"local://alice/sentiment@{first.revision}"
    assert {p.name for p in target.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    assert "| accuracy | 0.5000 | 0.9000 |" in (target / "README.md").read_text()
    again = publish_model(result, **PUBLISH_ARGS, hf_token=None, store_dir=store, owner_key=ALICE)
    assert again == first  # same artifact, same version: a repeated publish is harmless


def test_owners_sharing_a_namespace_never_share_a_folder(tmp_path: Path) -> None:
    """Alice and Bob both hold the organisation namespace acme: the same name, even the same
    bytes, land in two folders, so neither can replace or remove what the other stored."""
    store = tmp_path / "models"
    args = {**PUBLISH_ARGS, "output_model": "acme/sentiment", "hf_token": None, "store_dir": store}
    alices = publish_model(a_result(tmp_path / "a"), **args, owner_key=ALICE)
    bobs = publish_model(a_result(tmp_path / "b"), **args, owner_key=BOB)
    assert alices.uri == bobs.uri == f"local://acme/sentiment@{alices.revision}"
    alice_dir = store / ALICE / "acme" / "sentiment" / alices.revision
    bob_dir = store / BOB / "acme" / "sentiment" / bobs.revision
    assert alice_dir.is_dir()
    assert bob_dir.is_dir()
    shutil.rmtree(bob_dir)
    assert (alice_dir / "model.safetensors").is_file()
    assert sorted(p.name for p in store.iterdir()) == sorted([ALICE, BOB])


def test_without_an_owner_key_the_earlier_layout_and_a_bad_key_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "models"
    published = publish_model(a_result(tmp_path), **PUBLISH_ARGS, hf_token=None, store_dir=store)
    assert (store / "alice" / "sentiment" / published.revision).is_dir()
    assert published.uri == f"local://alice/sentiment@{published.revision}"
    for bad in ("../../etc", "u" + "0" * 23, "alice"):
        with pytest.raises(PublishError) as refused:
            publish_model(
                a_result(tmp_path / bad.replace("/", "_")),
                **PUBLISH_ARGS,
                hf_token=None,
                store_dir=tmp_path / "other",
                owner_key=bad,
            )
        assert not refused.value.retryable
    assert not (tmp_path / "other").exists()


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
    assert create["exist_ok"] is False  # an existing repository must be told apart
    assert published.created_repo is True
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


def test_created_repo_says_whether_this_job_created_the_repository(tmp_path: Path) -> None:
    hub = FlakyHub(failures=0, repos={"alice/existing"})
    args: dict[str, Any] = {**PUBLISH_ARGS, "hf_token": "hf_x", "store_dir": tmp_path / "s"}
    fresh = publish_model(a_result(tmp_path / "1"), **args, hub_api=hub)  # type: ignore[arg-type]
    assert fresh.created_repo is True
    # A second push into the same repository (another job, or a retry) did not create it.
    again = publish_model(a_result(tmp_path / "2"), **args, hub_api=hub)  # type: ignore[arg-type]
    assert again.created_repo is False
    existing = publish_model(
        a_result(tmp_path / "3"),
        **{**args, "output_model": "alice/existing"},
        hub_api=hub,  # type: ignore[arg-type]
    )
    assert existing.created_repo is False
    # The job's own checkpoints created it earlier: the job did.
    by_job = publish_model(
        a_result(tmp_path / "4"),
        **{**args, "output_model": "alice/existing"},
        hub_api=hub,  # type: ignore[arg-type]
        created_by_job=True,
    )
    assert by_job.created_repo is True


def _spec(hub_token: str | None, output_model: str = "alice/sentiment") -> JobSpec:
    return JobSpec(
        job_id=uuid.uuid4(),
        attempt=1,
        claim_secret="s",
        job_type=JobType.CLASSIFIER,
        base_model="xlm-roberta-base",
        output_model=output_model,
        hyperparameters={},
        data=DataTicket(url="https://data.example.com/x.csv"),
        hub_token=hub_token,
        owner_key=owner_key(output_model.split("/")[0]),
        lease_seconds=30,
        lease_expires_at=datetime.now(UTC) + timedelta(seconds=30),
    )


def _request(tmp_path: Path, spec: JobSpec) -> TrainRequest:
    return TrainRequest(
        job_id=str(spec.job_id),
        attempt=1,
        job_type=spec.job_type,
        base_model=spec.base_model,
        output_model=spec.output_model,
        hyperparameters={"epochs": 1},
        data_path=tmp_path / "x.csv",
        data_format="csv",
        work_dir=tmp_path / "work",
    )


def test_the_worker_pushes_with_the_owners_token_when_the_claim_has_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = FlakyHub(failures=0)
    tokens: list[str | None] = []

    def api(token: str | None = None, **_: Any) -> FlakyHub:
        tokens.append(token)
        return hub

    monkeypatch.setattr(huggingface_hub, "HfApi", api)
    monkeypatch.setattr(push_module, "HfApi", api)
    settings = WorkerSettings(
        hf_token="hf_worker_token", model_store_dir=tmp_path / "store", work_dir=tmp_path / "w"
    )
    toolkit = real_toolkit(settings)

    owners = _spec("hf_owner_token")
    store = toolkit.checkpoints(owners)
    assert isinstance(store, HubCheckpointStore)
    checkpoint = tmp_path / "ckpt" / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    store.save(str(owners.job_id), checkpoint)  # the first write: it creates the repository
    published = toolkit.publish(a_result(tmp_path / "a"), _request(tmp_path, owners), owners)
    assert published.created_repo is True  # by this job's checkpoints, before the push
    assert tokens == ["hf_owner_token", "hf_owner_token"]

    # Without a linked token, the worker's; a repository that existed was not this job's.
    hub.repos.add("bob/model")
    plain = _spec(None, "bob/model")
    toolkit.checkpoints(plain)
    published = toolkit.publish(a_result(tmp_path / "b"), _request(tmp_path, plain), plain)
    assert published.created_repo is False
    assert tokens[2:] == ["hf_worker_token", "hf_worker_token"]


def test_without_any_token_the_model_goes_to_the_owners_folder(tmp_path: Path) -> None:
    settings = WorkerSettings(model_store_dir=tmp_path / "store", work_dir=tmp_path / "w")
    toolkit = real_toolkit(settings)
    spec = _spec(None)
    assert isinstance(toolkit.checkpoints(spec), LocalCheckpointStore)
    published = toolkit.publish(a_result(tmp_path), _request(tmp_path, spec), spec)
    assert published.uri == f"local://alice/sentiment@{published.revision}"
    assert (tmp_path / "store" / ALICE / "alice" / "sentiment" / published.revision).is_dir()


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
