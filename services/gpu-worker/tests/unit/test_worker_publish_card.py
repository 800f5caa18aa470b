"""The model card and which storage errors are retried (pure functions)."""

from pathlib import Path

from contracts.enums import JobType
from gpu_worker.adapters.publish.model_card import render
from gpu_worker.adapters.publish.retries import is_transient
from gpu_worker.domain.training import TrainResult


class _Response:
    def __init__(self, status_code: int):
        self.status_code = status_code


class _HTTPError(Exception):
    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.response = _Response(status)


def test_card_has_base_model_data_hyperparameters_metrics_and_loading() -> None:
    result = TrainResult(
        model_dir=Path("/nowhere"),
        metrics={
            "accuracy": 0.9,
            "f1_macro": 0.88,
            "train_loss_first": 0.7,
            "train_loss_last": 0.2,
        },
        baseline_metrics={"accuracy": 0.5, "f1_macro": 0.33},
        data_stats={"rows": 40, "labels": ["neg", "pos"]},
    )
    card = render(
        result,
        output_model="alice/sentiment",
        job_type=JobType.CLASSIFIER,
        base_model="xlm-roberta-base",
        hyperparameters={"epochs": 3, "learning_rate": 2e-5},
    )
    assert "base_model: xlm-roberta-base" in card
    assert "| accuracy | 0.5000 | 0.9000 |" in card
    assert "| f1_macro | 0.3300 | 0.8800 |" in card
    assert "- rows: 40" in card
    assert "- learning_rate: 2e-05" in card
    assert 'pipeline("text-classification", model="alice/sentiment")' in card
    assert "from 0.7000 to 0.2000" in card


def test_lora_card_shows_samples() -> None:
    result = TrainResult(
        model_dir=Path("/nowhere"),
        metrics={"eval_loss": 1.0},
        baseline_metrics={"eval_loss": 2.0},
        data_stats={},
        samples=[{"prompt": "hi", "reference": "hello", "base": "zzz", "tuned": "hello"}],
    )
    card = render(
        result,
        output_model="a/b",
        job_type=JobType.LLM_LORA,
        base_model="ftd-local/tiny-llama",
        hyperparameters={},
    )
    assert "AutoPeftModelForCausalLM" in card
    assert "### Sample 1" in card
    assert "| eval_loss | 2.0000 | 1.0000 |" in card


def test_transient_errors() -> None:
    assert is_transient(ConnectionError())
    assert is_transient(TimeoutError())
    assert is_transient(_HTTPError(503))
    assert is_transient(_HTTPError(429))
    assert not is_transient(_HTTPError(401))
    assert not is_transient(_HTTPError(403))
    assert not is_transient(ValueError())
