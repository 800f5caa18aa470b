"""Where the offline catalogue entries' files are: the env vars the worker and model-server
both read, and nothing for a Hub id. Nothing is built here."""

from pathlib import Path

import pytest

from contracts.catalogue import OFFLINE_MINILM, OFFLINE_TINY_LLAMA
from contracts.offline_models import OfflineModelUnavailable, offline_model_path, tiny_llama_dir


def test_the_tiny_llama_folder_follows_its_env_var_then_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTD_TINY_LLAMA_DIR", str(tmp_path / "here"))
    assert tiny_llama_dir() == tmp_path / "here"
    monkeypatch.delenv("FTD_TINY_LLAMA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert tiny_llama_dir() == tmp_path / "cache" / "ftd" / "tiny-llama"


def test_a_built_tiny_llama_is_used_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    monkeypatch.setenv("FTD_TINY_LLAMA_DIR", str(tmp_path))
    assert offline_model_path(OFFLINE_TINY_LLAMA) == str(tmp_path)


def test_the_minilm_copy_must_hold_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTD_MINILM_DIR", str(tmp_path))
    with pytest.raises(OfflineModelUnavailable, match=r"no config\.json"):
        offline_model_path(OFFLINE_MINILM)
    (tmp_path / "config.json").write_text("{}")
    assert offline_model_path(OFFLINE_MINILM) == str(tmp_path)


def test_other_ids_are_not_offline() -> None:
    assert offline_model_path("intfloat/multilingual-e5-base") is None
    assert offline_model_path("") is None
