"""ftd-serve: reading `--model` specs and finding a model's files (no model is loaded here)."""

from pathlib import Path

import pytest

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


def test_detect_kind(tmp_path: Path) -> None:
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "modules.json").write_text("[]")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    assert detect_kind(tmp_path / "st") == "embedding"
    assert detect_kind(tmp_path / "hf") == "classifier"
    with pytest.raises(SourceError):
        detect_kind(tmp_path)
