"""Which files a LoRA adapter's base is loaded from: the catalogue's offline bases resolve to the
folder the worker trains on (FTD_TINY_LLAMA_DIR), a folder stays a folder, anything else is a Hub
id. No model is loaded here."""

import json
from pathlib import Path

import pytest

from contracts.catalogue import OFFLINE_MINILM, OFFLINE_TINY_LLAMA
from model_server.adapters.lora_peft import base_of, base_source


def test_the_tiny_llama_resolves_to_ftd_tiny_llama_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = tmp_path / "tiny-llama"
    built.mkdir()
    (built / "config.json").write_text("{}")
    (built / "tokenizer.json").write_text("{}")
    monkeypatch.setenv("FTD_TINY_LLAMA_DIR", str(built))

    assert base_source(OFFLINE_TINY_LLAMA) == str(built)


def test_a_folder_and_a_hub_id_are_loaded_as_named(tmp_path: Path) -> None:
    assert base_source(str(tmp_path)) == str(tmp_path)
    assert base_source("meta-llama/Llama-2-7b-hf") == "meta-llama/Llama-2-7b-hf"


def test_an_offline_base_without_its_files_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTD_MINILM_DIR", str(tmp_path / "missing"))

    with pytest.raises(ValueError, match=r"not available here: FTD_MINILM_DIR=.* no config\.json"):
        base_source(OFFLINE_MINILM)


def test_the_base_is_read_from_the_adapter_config(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": OFFLINE_TINY_LLAMA})
    )
    assert base_of(tmp_path) == OFFLINE_TINY_LLAMA

    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 8}))
    with pytest.raises(ValueError, match="names no base model"):
        base_of(tmp_path)
