"""Where a base model's files come from: a Hub id, or one of the catalogue's offline entries
(contracts.offline_models, shared with model-server)."""

from __future__ import annotations

from contracts.offline_models import OfflineModelUnavailable, offline_model_path
from gpu_worker.domain.errors import InfraError, UserDataError


def resolve(base_model: str) -> str:
    """A path or Hub id that `from_pretrained` loads. Offline entries never touch the network."""
    try:
        local = offline_model_path(base_model)
    except OfflineModelUnavailable as exc:
        raise InfraError(str(exc)) from exc
    if local is not None:
        return local
    if not base_model or base_model.startswith((".", "/")):
        raise UserDataError(f"base model {base_model!r} is not a Hub model id")
    return base_model


def load_error(base_model: str, exc: BaseException) -> Exception:
    """Classify a failure to load a base model: missing or gated is the user's, the rest infra."""
    name = type(exc).__name__
    if name in {"RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"}:
        return UserDataError(f"base model {base_model!r} cannot be loaded: {name}")
    return InfraError(f"base model {base_model!r} could not be loaded: {name}: {exc}")
