"""Hyperparameters: defaults per job type, bounds, and no fields a job type does not know."""

import pytest
from pydantic import ValidationError

from contracts.enums import JobType
from contracts.hyperparameters import (
    ClassifierHyperparameters,
    EmbeddingHyperparameters,
    LoraHyperparameters,
    parse_hyperparameters,
)

COMMON_DEFAULTS = {"seed": 42, "warmup_ratio": 0.1, "eval_split": 0.1}
ENCODER_DEFAULTS = {
    **COMMON_DEFAULTS,
    "epochs": 3,
    "learning_rate": 2e-5,
    "batch_size": 16,
    "max_seq_length": 256,
}
LORA_DEFAULTS = {
    **COMMON_DEFAULTS,
    "epochs": 1,
    "learning_rate": 2e-4,
    "batch_size": 4,
    "max_seq_length": 1024,
    "gradient_accumulation_steps": 4,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "gradient_checkpointing": None,
}
LORA_ONLY = (
    "gradient_accumulation_steps",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "gradient_checkpointing",
)


@pytest.mark.parametrize(
    ("job_type", "model", "defaults"),
    [
        (JobType.EMBEDDING, EmbeddingHyperparameters, ENCODER_DEFAULTS),
        (JobType.CLASSIFIER, ClassifierHyperparameters, ENCODER_DEFAULTS),
        (JobType.LLM_LORA, LoraHyperparameters, LORA_DEFAULTS),
    ],
)
def test_defaults_per_job_type(
    job_type: JobType, model: type[object], defaults: dict[str, object]
) -> None:
    for raw in (None, {}):
        params = parse_hyperparameters(job_type, raw)

        assert isinstance(params, model)
        assert params.job_type == job_type
        assert params.model_dump(exclude={"job_type"}) == defaults


def test_given_values_override_defaults() -> None:
    params = parse_hyperparameters(JobType.LLM_LORA, {"epochs": 2, "lora_r": 8})

    assert isinstance(params, LoraHyperparameters)
    assert (params.epochs, params.lora_r, params.batch_size) == (2, 8, 4)


def test_gradient_checkpointing_is_unset_true_or_false() -> None:
    for value in (None, True, False):
        params = parse_hyperparameters(JobType.LLM_LORA, {"gradient_checkpointing": value})
        assert isinstance(params, LoraHyperparameters)
        assert params.gradient_checkpointing is value


def test_the_job_type_argument_wins_over_the_payload() -> None:
    params = parse_hyperparameters(JobType.EMBEDDING, {"job_type": "llm_lora"})

    assert isinstance(params, EmbeddingHyperparameters)


@pytest.mark.parametrize("job_type", list(JobType))
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 101),
        ("learning_rate", 0),
        ("learning_rate", 0.1),
        ("batch_size", 0),
        ("max_seq_length", 4),
        ("max_seq_length", 65536),
        ("seed", -1),
        ("warmup_ratio", 0.6),
        ("eval_split", -0.1),
        ("eval_split", 0.9),
    ],
)
def test_out_of_range_values_are_rejected(job_type: JobType, field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        parse_hyperparameters(job_type, {field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lora_r", 0),
        ("lora_r", 512),
        ("lora_alpha", 0),
        ("lora_dropout", 0.9),
        ("gradient_accumulation_steps", 0),
        ("batch_size", 512),
        ("gradient_checkpointing", "sometimes"),
    ],
)
def test_lora_out_of_range_values_are_rejected(field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        parse_hyperparameters(JobType.LLM_LORA, {field: value})


@pytest.mark.parametrize("job_type", list(JobType))
def test_unknown_fields_are_rejected(job_type: JobType) -> None:
    with pytest.raises(ValidationError, match="extra"):
        parse_hyperparameters(job_type, {"epoch": 3})


@pytest.mark.parametrize("job_type", [JobType.EMBEDDING, JobType.CLASSIFIER])
@pytest.mark.parametrize("field", LORA_ONLY)
def test_lora_fields_are_refused_outside_llm_lora(job_type: JobType, field: str) -> None:
    with pytest.raises(ValidationError):
        parse_hyperparameters(job_type, {field: 1})


def test_hyperparameters_are_immutable() -> None:
    params = parse_hyperparameters(JobType.CLASSIFIER, None)

    with pytest.raises(ValidationError):
        params.epochs = 5  # type: ignore[misc]
