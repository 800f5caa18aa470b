"""Which models to serve and where their files are.

A model comes from the command line (`[TYPE:]NAME=URI`) or from the registry's list of deployed
models. URIs: `hf://owner/name@revision` (downloaded with huggingface_hub at that revision),
`file:///absolute/path`, or `store://owner/name@revision` (the local model store,
`<FTD_MODEL_STORE_DIR>/<owner>/<name>/<revision>/`).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

Kind = Literal["embedding", "classifier"]
KINDS: tuple[Kind, ...] = ("embedding", "classifier")


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


def resolve(source: ModelSource, *, store_dir: Path | None, hf_token: str | None) -> Path:
    """A local folder holding the model, downloading it from the Hub when needed."""
    # A model in the local store is found under this machine's store when it has one there.
    if source.store == "local" and store_dir and source.repo_id and source.revision:
        local = store_dir / source.repo_id / source.revision
        if local.is_dir():
            return local
    parts = urlsplit(source.uri)
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
    raise SourceError(f"{source.name}: cannot load {source.uri!r} (hf://, file:// or store://)")


def detect_kind(path: Path) -> Kind:
    """sentence-transformers folders have modules.json; a classifier is a transformers folder."""
    if (path / "modules.json").is_file() or (path / "config_sentence_transformers.json").is_file():
        return "embedding"
    if (path / "config.json").is_file():
        return "classifier"
    raise SourceError(f"{path} holds neither a sentence-transformers nor a transformers model")
