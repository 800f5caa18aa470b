"""When a LoRA job checkpoints activations: the hyperparameter, else the memory estimate."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the training stack is not installed")

from gpu_worker.training import lora  # noqa: E402

GIB = 2**30
# The calibration run (bench/README.md): a 704M Llama on an H200, 8 packed 512-token sequences a
# step, LoRA r=16 on every linear layer: 9.2 GiB peak without checkpointing, 2.5 GiB with it.
H200_RUN = {"tokens": 8 * 512, "hidden": 2048, "intermediate": 5440, "layers": 16, "vocab": 640}


def hp(checkpointing: bool | None = None, batch: int = 8, seq: int = 512) -> Any:
    return SimpleNamespace(
        gradient_checkpointing=checkpointing, batch_size=batch, max_seq_length=seq
    )


def model(**config: int) -> Any:
    return SimpleNamespace(config=SimpleNamespace(**config))


def test_the_estimate_covers_the_measured_run_without_overshooting_much() -> None:
    activations, logits = lora.estimated_memory(**H200_RUN)
    measured = (9.2 - 2.5) * GIB
    assert measured <= activations + logits <= 1.25 * measured


def test_checkpointing_only_when_the_estimate_does_not_fit() -> None:
    assert not lora.checkpointing_needed(**H200_RUN, free_bytes=130 * GIB)
    assert lora.checkpointing_needed(**H200_RUN, free_bytes=8 * GIB)


def test_a_large_vocabulary_counts_through_its_logits() -> None:
    run = H200_RUN | {"vocab": 152_000}
    assert not lora.checkpointing_needed(**H200_RUN, free_bytes=11 * GIB)
    assert lora.checkpointing_needed(**run, free_bytes=11 * GIB)


@pytest.mark.parametrize("asked", [True, False])
def test_the_hyperparameter_wins(asked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (1 * GIB, 80 * GIB))
    on, why = lora.activation_checkpointing(
        hp(asked), model(hidden_size=2048, num_hidden_layers=16)
    )
    assert on is asked
    assert "hyperparameter" in why


def test_off_on_cpu_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert lora.activation_checkpointing(hp(), model(hidden_size=2048, num_hidden_layers=16)) == (
        False,
        "activation checkpointing off (CPU)",
    )


@pytest.mark.parametrize(("free_gib", "expected"), [(130, False), (6, True)])
def test_unset_on_a_gpu_follows_free_memory(
    free_gib: int, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (free_gib * GIB, 141 * GIB))
    config = {"hidden_size": 2048, "intermediate_size": 5440, "num_hidden_layers": 16}
    on, why = lora.activation_checkpointing(hp(), model(**config, vocab_size=640))
    assert on is expected
    assert f"{free_gib:.1f} GiB of GPU memory free" in why


def test_unknown_model_size_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    on, _ = lora.activation_checkpointing(hp(), model())
    assert on is True
