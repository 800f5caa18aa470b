"""Which models to serve and where their files are.

A model comes from the command line (`[TYPE:]NAME=URI`) or from the registry's list of deployed
models. URIs: `hf://owner/name@revision` (downloaded with huggingface_hub at that revision),
`local://owner/name@revision` (a worker's local model store, resolved against this server's
FTD_MODEL_STORE_DIR: `<store>/<owner key>/<owner>/<name>/<revision>/`, the owner key being the
model's user's, contracts.store), `file:///absolute/path`, or `store://owner/name@revision`
(`<store>/<owner>/<name>/<revision>/`, the layout before owner folders).
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from contracts.store import OWNER_KEY_PATTERN, local_uri, owner_key, parse_local_uri

Kind = Literal["embedding", "classifier"]
KINDS: tuple[Kind, ...] = ("embedding", "classifier")
_OWNER_KEY = re.compile(OWNER_KEY_PATTERN)


class SourceError(ValueError):
    """A model that cannot be located; the message says which and why."""


@dataclass(frozen=True)
class ModelSource:
    name: str
    uri: str
    kind: Kind | None = None  # None: detected from the files
    # From the registry: the store it was pushed to and its coordinates there.
    store: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    # The user the model belongs to (from the registry): its folder in the local store.
    owner: str | None = None


def parse_cli_model(value: str) -> ModelSource:
    """`[TYPE:]NAME=URI`, e.g. `embedding:alice/emb=hf://alice/emb@3f2a...`."""
    spec, sep, uri = value.partition("=")
    if not sep or not uri:
        raise SourceError(f"--model {value!r}: expected [TYPE:]NAME=URI")
    kind: Kind | None = None
    head, colon, rest = spec.partition(":")
    if colon:
        if head not in KINDS:
            raise SourceError(f"--model {value!r}: TYPE must be embedding or classifier")
        kind, spec = head, rest
    if not spec:
        raise SourceError(f"--model {value!r}: the model needs a NAME")
    return ModelSource(name=spec, uri=uri, kind=kind)


def _repo_at(rest: str, uri: str) -> tuple[str, str | None]:
    repo, _, revision = rest.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise SourceError(f"{uri}: expected owner/name[@revision]")
    return repo, revision or None


def _in_store(source: ModelSource, store_dir: Path, repo: str, revision: str) -> Path | None:
    """The model's folder in this machine's store: its owner's folder when the owner is known,
    else the one owner folder holding it (several: ambiguous, refused), then the layout of
    versions before owner folders. None when it is in none of them (or the names are not a
    model's: nothing outside the store is ever looked at)."""
    try:
        repo, revision = parse_local_uri(local_uri(repo, revision))
    except ValueError:
        return None
    if source.owner is not None:
        owned = store_dir / owner_key(source.owner) / repo / revision
        candidates = [owned] if owned.is_dir() else []
    else:
        found = sorted(store_dir.glob(f"*/{repo}/{revision}"))
        candidates = [p for p in found if _OWNER_KEY.fullmatch(p.relative_to(store_dir).parts[0])]
        if len(candidates) > 1:
            raise SourceError(
                f"{source.name}: {len(candidates)} owners have {repo}@{revision} in the store; "
                "serve it from the registry (which knows whose it is) or by its file:// path"
            )
    if candidates:
        return candidates[0]
    legacy = store_dir / repo / revision
    return legacy if legacy.is_dir() else None


def _resolve_local(source: ModelSource, store_dir: Path | None) -> Path:
    try:
        repo, revision = parse_local_uri(source.uri)
    except ValueError:
        raise SourceError(f"{source.name}: expected local://owner/name@revision") from None
    if store_dir is None:
        raise SourceError(f"{source.name}: local:// needs FTD_MODEL_STORE_DIR")
    path = _in_store(source, store_dir, repo, revision)
    if path is None:
        raise SourceError(
            f"{source.name}: {source.uri} is not in this machine's model store ({store_dir})"
        )
    return path


def resolve(source: ModelSource, *, store_dir: Path | None, hf_token: str | None) -> Path:
    """A local folder holding the model, downloading it from the Hub when needed."""
    parts = urlsplit(source.uri)
    if parts.scheme == "local":
        return _resolve_local(source, store_dir)
    # A model in the local store is found under this machine's store when it has one there.
    if source.store == "local" and store_dir and source.repo_id and source.revision:
        local = _in_store(source, store_dir, source.repo_id, source.revision)
        if local is not None:
            return local
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        if not path.is_dir():
            raise SourceError(f"{source.name}: {source.uri} is not a folder on this machine")
        return path
    if parts.scheme == "store":
        repo, revision = _repo_at(f"{parts.netloc}{parts.path}", source.uri)
        if store_dir is None or revision is None:
            raise SourceError(f"{source.name}: store:// needs FTD_MODEL_STORE_DIR and an @revision")
        path = store_dir / repo / revision
        if not path.is_dir():
            raise SourceError(f"{source.name}: {path} does not exist")
        return path
    if parts.scheme == "hf":
        from huggingface_hub import snapshot_download

        repo, revision = _repo_at(f"{parts.netloc}{parts.path}", source.uri)
        return Path(snapshot_download(repo, revision=revision, token=hf_token))
    raise SourceError(
        f"{source.name}: cannot load {source.uri!r} (hf://, local://, file:// or store://)"
    )


def detect_kind(path: Path) -> Kind:
    """sentence-transformers folders have modules.json; a classifier is a transformers folder."""
    if (path / "modules.json").is_file() or (path / "config_sentence_transformers.json").is_file():
        return "embedding"
    if (path / "config.json").is_file():
        return "classifier"
    raise SourceError(f"{path} holds neither a sentence-transformers nor a transformers model")
