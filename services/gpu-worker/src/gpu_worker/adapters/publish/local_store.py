"""The local model store: `<store_dir>/<owner key>/<namespace>/<name>/<revision>/`, revision =
content hash (layout and URIs: contracts.store).

Used without a Hub token so the local stack works offline. Each job owner has a folder of their
own (the claim's `owner_key`), so a namespace several users hold (an organisation) never mixes
their models, and a model is reported as `local://<namespace>/<name>@<revision>`, never by its
path on this machine. Content addressing makes a repeated publish of the same artifact land on
the same revision (idempotent), and the copy is written to a temporary folder then renamed, so a
reader never sees half a model.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from contracts.store import OWNER_KEY_PATTERN

CARD = "README.md"
_OWNER_KEY = re.compile(OWNER_KEY_PATTERN)


def content_revision(model_dir: Path) -> str:
    """sha256 over every file's relative path and bytes, the model card excluded; 16 hex chars."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(model_dir).as_posix()
        if rel == CARD:
            continue
        digest.update(rel.encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def model_folder(store_dir: Path, owner_key: str | None, repo_id: str, revision: str) -> Path:
    """Where a model is in the store. Without an owner key (a claim from a job-api that sends
    none) the layout of earlier versions: `<store_dir>/<namespace>/<name>/<revision>`."""
    namespace, name = repo_id.split("/", 1)
    if owner_key is None:
        return store_dir / namespace / name / revision
    if not _OWNER_KEY.fullmatch(owner_key):
        raise ValueError("not an owner key (contracts.store.owner_key)")
    return store_dir / owner_key / namespace / name / revision


def store_locally(
    model_dir: Path, store_dir: Path, owner_key: str | None, repo_id: str, revision: str
) -> Path:
    target = model_folder(store_dir, owner_key, repo_id, revision)
    if (target / CARD).is_file():
        return target.resolve()
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{revision}-", dir=parent))
    try:
        shutil.copytree(model_dir, staging, dirs_exist_ok=True)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / CARD).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target.resolve()
