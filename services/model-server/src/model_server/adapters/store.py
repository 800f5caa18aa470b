"""Where a deployed model's files are: the local model store first
(`<store>/<owner key>/<owner>/<name>/<revision>/`, contracts.store, the layout workers write
without a Hub token), then the Hugging Face Hub at that revision when downloads are allowed."""

from pathlib import Path

from contracts.store import local_uri, owner_key, parse_local_uri


class ModelFilesMissing(Exception):
    """The model's files are nowhere this server can read them; the message says where it looked."""


def in_store(store_dir: Path, user_id: str, name: str, revision: str) -> Path | None:
    """The model's folder in the store, or None. Names are checked to be a model's (no `..`,
    nothing absolute), so nothing outside the store is ever looked at."""
    try:
        repo, rev = parse_local_uri(local_uri(name, revision))
    except ValueError:
        return None
    path = store_dir / owner_key(user_id) / repo / rev
    return path if path.is_dir() else None


def locate(
    *,
    user_id: str,
    name: str,
    revision: str | None,
    store_dir: Path | None,
    hub_downloads: bool,
    hf_token: str | None,
) -> Path:
    """A local folder with the model (blocking: a Hub download may take minutes)."""
    if store_dir is not None and revision is not None:
        found = in_store(store_dir, user_id, name, revision)
        if found is not None:
            return found
    if not hub_downloads:
        where = f"the local store {store_dir}" if store_dir else "no local store configured"
        raise ModelFilesMissing(f"{name}@{revision}: not found ({where}; Hub downloads are off)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, revision=revision, token=hf_token))
    except Exception as exc:
        raise ModelFilesMissing(
            f"{name}@{revision}: not in the local store and not downloadable from the Hub "
            f"({type(exc).__name__})"
        ) from exc
