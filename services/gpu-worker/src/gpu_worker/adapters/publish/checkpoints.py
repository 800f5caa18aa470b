"""Where checkpoints outlive an attempt, so a retried job resumes instead of starting over.

An attempt saves a checkpoint folder (StopRequested.checkpoint, or the newest
`work_dir/checkpoints/checkpoint-N` while training) with `save()`, and before training a new attempt
asks `fetch_latest()` for the newest one, which becomes `TrainRequest.resume_from`. Both stores
are gpu_worker.service_layer.ports.CheckpointStore.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

from gpu_worker.adapters.publish.push import create_repo_if_missing
from gpu_worker.adapters.publish.retries import call_with_retries

_STEP = re.compile(r"^checkpoint-(\d+)$")
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _step(name: str) -> int | None:
    m = _STEP.match(name)
    return int(m.group(1)) if m else None


def _check(job_id: str, checkpoint: Path | None = None) -> None:
    if not _JOB_ID.match(job_id):
        raise ValueError(f"job id {job_id!r} cannot name a checkpoint folder")
    if checkpoint is not None and _step(checkpoint.name) is None:
        raise ValueError(f"{checkpoint} is not a Trainer checkpoint folder (checkpoint-N)")


class LocalCheckpointStore:
    """`<root>/<job_id>/checkpoint-N/` on a disk every attempt sees (the default local store)."""

    def __init__(self, root: Path, *, keep: int = 2):
        self.root = root
        self.keep = keep

    def save(self, job_id: str, checkpoint: Path) -> None:
        _check(job_id, checkpoint)
        job_dir = self.root / job_id
        target = job_dir / checkpoint.name
        if target.is_dir():
            return
        job_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=job_dir))
        try:
            shutil.copytree(checkpoint, staging, dirs_exist_ok=True)
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for old in self._steps(job_dir)[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def fetch_latest(self, job_id: str, into: Path) -> Path | None:
        _check(job_id)
        found = self._steps(self.root / job_id)
        if not found:
            return None
        into.mkdir(parents=True, exist_ok=True)
        dest = into / found[-1].name
        if not dest.exists():
            shutil.copytree(found[-1], dest)
        return dest

    def discard(self, job_id: str) -> None:
        _check(job_id)
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    @staticmethod
    def _steps(job_dir: Path) -> list[Path]:
        if not job_dir.is_dir():
            return []
        dirs = [(s, p) for p in job_dir.iterdir() if (s := _step(p.name)) is not None]
        return [p for _, p in sorted(dirs)]


class HubCheckpointStore:
    """Branch `checkpoints-<job_id>` of the job's (private) output repo on the Hub, files under
    `checkpoints/checkpoint-N/`; `discard` deletes the branch once the model is pushed."""

    def __init__(self, api: HfApi, repo_id: str, *, private: bool = True, attempts: int = 5):
        self.api = api
        self.repo_id = repo_id
        self.private = private
        self.attempts = attempts
        # This store's first save created the repository (so the job did, not someone before).
        self.created_repo = False

    def _branch(self, job_id: str) -> str:
        return f"checkpoints-{job_id}"

    def save(self, job_id: str, checkpoint: Path) -> None:
        _check(job_id, checkpoint)
        branch = self._branch(job_id)

        def push() -> None:
            if create_repo_if_missing(self.api, self.repo_id, private=self.private):
                self.created_repo = True
            self.api.create_branch(self.repo_id, branch=branch, exist_ok=True)
            self.api.upload_folder(
                repo_id=self.repo_id,
                folder_path=checkpoint,
                path_in_repo=f"checkpoints/{checkpoint.name}",
                revision=branch,
                commit_message=f"checkpoint {checkpoint.name} of job {job_id}",
            )

        call_with_retries(
            push,
            attempts=self.attempts,
            max_wait_s=30.0,
            what=f"saving checkpoint to {self.repo_id}@{branch}",
        )

    def fetch_latest(self, job_id: str, into: Path) -> Path | None:
        _check(job_id)
        branch = self._branch(job_id)
        try:
            files = self.api.list_repo_files(self.repo_id, revision=branch)
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return None
        steps = {
            s: name
            for f in files
            if f.startswith("checkpoints/")
            and (name := f.split("/")[1])
            and (s := _step(name)) is not None
        }
        if not steps:
            return None
        name = steps[max(steps)]
        self.api.snapshot_download(
            self.repo_id,
            revision=branch,
            allow_patterns=[f"checkpoints/{name}/*"],
            local_dir=into,
        )
        return into / "checkpoints" / name

    def discard(self, job_id: str) -> None:
        _check(job_id)
        try:
            self.api.delete_branch(self.repo_id, branch=self._branch(job_id))
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return
