"""ftd-serve: reading `--model` specs and finding a model's files (no model is loaded here)."""

from pathlib import Path

import pytest

from contracts.store import owner_key
from gpu_worker.serve.sources import (
    ModelSource,
    SourceError,
    detect_kind,
    parse_cli_model,
    resolve,
)


def test_cli_specs() -> None:
    assert parse_cli_model("embedding:alice/emb=hf://alice/emb@abc") == ModelSource(
        name="alice/emb", uri="hf://alice/emb@abc", kind="embedding"
    )
    assert parse_cli_model("alice/clf=file:///m/clf") == ModelSource(
        name="alice/clf", uri="file:///m/clf"
    )
    for bad in ("alice/emb", "llm:alice/x=file:///x", "=file:///x", "alice/emb="):
        with pytest.raises(SourceError):
            parse_cli_model(bad)


def test_resolve_local_folders(tmp_path: Path) -> None:
    folder = tmp_path / "alice" / "emb" / "rev1"
    folder.mkdir(parents=True)
    assert (
        resolve(ModelSource("alice/emb", f"file://{folder}"), store_dir=None, hf_token=None)
        == folder
    )
    assert (
        resolve(
            ModelSource("alice/emb", "store://alice/emb@rev1"), store_dir=tmp_path, hf_token=None
        )
        == folder
    )
    # A local-store model from the registry is looked up in this machine's store first.
    registered = ModelSource(
        "alice/emb",
        "file:///elsewhere/alice/emb/rev1",
        store="local",
        repo_id="alice/emb",
        revision="rev1",
    )
    assert resolve(registered, store_dir=tmp_path, hf_token=None) == folder
    with pytest.raises(SourceError, match="not a folder"):
        resolve(registered, store_dir=None, hf_token=None)
    with pytest.raises(SourceError, match="does not exist"):
        resolve(ModelSource("x", "store://alice/emb@rev2"), store_dir=tmp_path, hf_token=None)
    with pytest.raises(SourceError, match="cannot load"):
        resolve(ModelSource("x", "s3://bucket/key"), store_dir=tmp_path, hf_token=None)


def test_resolve_local_store_uris_in_the_owners_folder(tmp_path: Path) -> None:
    """`local://` (what the registry shows) is resolved against this machine's store, in the
    model's owner's folder: Alice's server never loads Bob's model of the same name."""
    alices = tmp_path / owner_key("alice") / "acme" / "emb" / "rev1"
    bobs = tmp_path / owner_key("bob") / "acme" / "emb" / "rev1"
    for folder in (alices, bobs):
        folder.mkdir(parents=True)

    def from_registry(owner: str) -> ModelSource:
        return ModelSource(
            "acme/emb",
            "local://acme/emb@rev1",
            store="local",
            repo_id="acme/emb",
            revision="rev1",
            owner=owner,
        )

    assert resolve(from_registry("alice"), store_dir=tmp_path, hf_token=None) == alices
    assert resolve(from_registry("bob"), store_dir=tmp_path, hf_token=None) == bobs
    with pytest.raises(SourceError, match="not in this machine's model store"):
        resolve(from_registry("carol"), store_dir=tmp_path, hf_token=None)
    # From the command line (no owner): the one owner folder holding it; two are ambiguous.
    cli = ModelSource("acme/emb", "local://acme/emb@rev1")
    with pytest.raises(SourceError, match="2 owners"):
        resolve(cli, store_dir=tmp_path, hf_token=None)
    bobs.rmdir()
    assert resolve(cli, store_dir=tmp_path, hf_token=None) == alices
    with pytest.raises(SourceError, match="FTD_MODEL_STORE_DIR"):
        resolve(cli, store_dir=None, hf_token=None)
    for bad in ("local://../emb@rev1", "local://acme/emb", "local://acme/../x@r", "local://a@b"):
        with pytest.raises(SourceError, match="expected local://"):
            resolve(ModelSource("x", bad), store_dir=tmp_path, hf_token=None)


def test_models_stored_before_owner_folders_still_load(tmp_path: Path) -> None:
    legacy = tmp_path / "alice" / "emb" / "rev1"
    legacy.mkdir(parents=True)
    registered = ModelSource(
        "alice/emb",
        "local://alice/emb@rev1",
        store="local",
        repo_id="alice/emb",
        revision="rev1",
        owner="alice",
    )
    assert resolve(registered, store_dir=tmp_path, hf_token=None) == legacy
    # A registry entry with odd coordinates never leads outside the store.
    odd = ModelSource("x", "file:///nowhere", store="local", repo_id="../../etc", revision="x")
    with pytest.raises(SourceError, match="not a folder"):
        resolve(odd, store_dir=tmp_path / "alice", hf_token=None)


def test_detect_kind(tmp_path: Path) -> None:
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "modules.json").write_text("[]")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    assert detect_kind(tmp_path / "st") == "embedding"
    assert detect_kind(tmp_path / "hf") == "classifier"
    with pytest.raises(SourceError):
        detect_kind(tmp_path)
