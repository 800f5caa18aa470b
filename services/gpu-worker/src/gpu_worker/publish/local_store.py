"""The local model store: `<store_dir>/<owner>/<name>/<revision>/`, revision = content hash.

Used without an HF token so the local stack works offline. Content addressing makes a repeated
publish of the same artifact land on the same revision (idempotent), and the copy is written to a
temporary folder then renamed, so a reader never sees half a model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

CARD = "README.md"


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


def store_locally(model_dir: Path, store_dir: Path, repo_id: str, revision: str) -> Path:
    owner, name = repo_id.split("/", 1)
    parent = store_dir / owner / name
    target = parent / revision
    if (target / CARD).is_file():
        return target.resolve()
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
