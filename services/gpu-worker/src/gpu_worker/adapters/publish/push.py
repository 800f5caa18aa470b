"""Store a trained model: the Hugging Face Hub with a token (the job owner's own when they linked
one, else the worker's), else the local model store (the owner's folder in it)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import structlog
from huggingface_hub import HfApi

from contracts.enums import JobType
from contracts.store import local_uri
from gpu_worker.adapters.publish import local_store, model_card
from gpu_worker.adapters.publish.retries import call_with_retries, status_of
from gpu_worker.domain.errors import PublishError
from gpu_worker.domain.training import TrainResult

log = structlog.get_logger(__name__)
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass(frozen=True)
class Published:
    store: Literal["hub", "local"]
    repo_id: str
    revision: str
    uri: str  # hf://owner/name@rev or local://owner/name@rev (never a path on this machine)
    # This job's writes created the Hub repository (the registry may delete it with the model).
    created_repo: bool = False


def create_repo_if_missing(api: HfApi, repo_id: str, *, private: bool) -> bool:
    """Create the model repository unless it exists; True when this call created it. A create
    retried after a lost answer finds the repository there and says False: when unsure, the
    repository counts as someone else's (the registry then never deletes it)."""
    try:
        api.create_repo(repo_id, private=private, exist_ok=False, repo_type="model")
    except Exception as exc:
        if status_of(exc) == 409:
            return False
        raise
    return True


def publish_model(
    result: TrainResult,
    *,
    output_model: str,
    job_type: JobType,
    base_model: str,
    hyperparameters: Mapping[str, Any],
    hf_token: str | None,
    store_dir: Path,
    owner_key: str | None = None,
    created_by_job: bool = False,
    private: bool = True,
    hub_api: HfApi | None = None,
    attempts: int = 5,
    max_wait_s: float = 30.0,
) -> Published:
    """Write the model card into `result.model_dir` and store the folder; retries transient
    failures (`attempts` tries, exponential backoff). Never trains: on PublishError the folder is
    intact and a later call with the same result pushes it.

    `hf_token`: the Hub token to push with (the owner's, else the worker's); none stores locally,
    in the owner's folder (`owner_key`). `created_by_job`: an earlier write of this job (its
    checkpoints) created the Hub repository."""
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
        published = _push_to_hub(api, result.model_dir, output_model, private, attempts, max_wait_s)
        if created_by_job and not published.created_repo:
            return replace(published, created_repo=True)
        return published
    revision = local_store.content_revision(result.model_dir)
    (result.model_dir / local_store.CARD).write_text(
        model_card.render(result, **card, revision=None)
    )
    try:
        target = local_store.store_locally(
            result.model_dir, store_dir, owner_key, output_model, revision
        )
    except ValueError as exc:
        raise PublishError(f"cannot store the model locally: {exc}", retryable=False) from None
    # The path stays in this machine's log; the report names the model by its store URI.
    log.info("model.stored_locally", repo_id=output_model, revision=revision, path=str(target))
    return Published(
        store="local",
        repo_id=output_model,
        revision=revision,
        uri=local_uri(output_model, revision),
    )


def _push_to_hub(
    api: HfApi, folder: Path, repo_id: str, private: bool, attempts: int, max_wait_s: float
) -> Published:
    created = call_with_retries(
        lambda: create_repo_if_missing(api, repo_id, private=private),
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
    log.info("model.pushed_to_hub", repo_id=repo_id, revision=revision, created_repo=created)
    return Published(
        store="hub",
        repo_id=repo_id,
        revision=revision,
        uri=f"hf://{repo_id}@{revision}",
        created_repo=created,
    )
