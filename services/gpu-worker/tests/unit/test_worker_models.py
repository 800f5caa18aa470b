"""Where the offline MiniLM's files come from: the package, or FTD_MINILM_DIR."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.catalogue import OFFLINE_MINILM
from gpu_worker.domain.errors import InfraError, UserDataError
from gpu_worker.training import models


def test_minilm_dir_overrides_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("FTD_MINILM_DIR", str(tmp_path))
    assert models.resolve(OFFLINE_MINILM) == str(tmp_path)


def test_minilm_dir_without_a_model_is_an_infra_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTD_MINILM_DIR", str(tmp_path / "missing"))
    with pytest.raises(InfraError, match=r"no config\.json"):
        models.resolve(OFFLINE_MINILM)


def test_hub_ids_pass_through_and_paths_are_refused() -> None:
    assert models.resolve("org/model") == "org/model"
    with pytest.raises(UserDataError):
        models.resolve("/etc/passwd")
