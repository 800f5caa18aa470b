"""Store a trained model: the Hugging Face Hub with a token, else the local model store."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog
from huggingface_hub import HfApi

from contracts.enums import JobType
from gpu_worker.publish import local_store, model_card
from gpu_worker.publish.errors import PublishError, call_with_retries
from gpu_worker.training.api import TrainResult

log = structlog.get_logger(__name__)
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass(frozen=True)
class Published:
    store: Literal["hub", "local"]
    repo_id: str
    revision: str
    uri: str  # hf://owner/name@rev or file:///abs/path


def publish_model(
    result: TrainResult,
    *,
    output_model: str,
    job_type: JobType,
    base_model: str,
    hyperparameters: Mapping[str, Any],
    hf_token: str | None,
    store_dir: Path,
    private: bool = True,
    hub_api: HfApi | None = None,
    attempts: int = 5,
    max_wait_s: float = 30.0,
) -> Published:
    """Write the model card into `result.model_dir` and store the folder; retries transient
    failures (`attempts` tries, exponential backoff). Never trains: on PublishError the folder is
    intact and a later call with the same result pushes it."""
    if not REPO_ID.match(output_model):
        raise PublishError(f"output model {output_model!r} is not 'owner/name'", retryable=False)
    if not result.model_dir.is_dir():
        raise PublishError(f"no trained model at {result.model_dir}", retryable=False)
    card: dict[str, Any] = {
        "output_model": output_model,
        "job_type": job_type,
        "base_model": base_model,
        "hyperparameters": hyperparameters,
    }
    if hf_token:
        api = hub_api or HfApi(token=hf_token)
        (result.model_dir / local_store.CARD).write_text(model_card.render(result, **card))
        return _push_to_hub(api, result.model_dir, output_model, private, attempts, max_wait_s)
    revision = local_store.content_revision(result.model_dir)
    (result.model_dir / local_store.CARD).write_text(
        model_card.render(result, **card, revision=None)
    )
    target = local_store.store_locally(result.model_dir, store_dir, output_model, revision)
    log.info("model.stored_locally", repo_id=output_model, revision=revision, path=str(target))
    return Published(store="local", repo_id=output_model, revision=revision, uri=target.as_uri())


def _push_to_hub(
    api: HfApi, folder: Path, repo_id: str, private: bool, attempts: int, max_wait_s: float
) -> Published:
    call_with_retries(
        lambda: api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model"),
        attempts=attempts,
        max_wait_s=max_wait_s,
        what=f"creating Hub repo {repo_id}",
    )
    commit = call_with_retries(
        lambda: api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            repo_type="model",
            commit_message="Fine-tuned model from Finetune Dispatcher",
            ignore_patterns=["checkpoint-*/**", "runs/**"],
        ),
        attempts=attempts,
        max_wait_s=max_wait_s,
        what=f"uploading to Hub repo {repo_id}",
    )
    revision = getattr(commit, "oid", None)
    if not isinstance(revision, str) or not revision:
        raise PublishError("the Hub answered the upload without a commit id", retryable=True)
    log.info("model.pushed_to_hub", repo_id=repo_id, revision=revision)
    return Published(
        store="hub", repo_id=repo_id, revision=revision, uri=f"hf://{repo_id}@{revision}"
    )
