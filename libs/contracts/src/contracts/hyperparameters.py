"""Training hyperparameters, validated per job type, with defaults a first run can rely on."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts.enums import JobType


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=3, ge=1, le=100, description="Passes over the training data.")
    learning_rate: float = Field(default=2e-5, gt=0, le=1e-2, description="Peak learning rate.")
    batch_size: int = Field(default=16, ge=1, le=1024, description="Examples per device step.")
    max_seq_length: int = Field(default=256, ge=8, le=32768, description="Tokens kept per example.")
    seed: int = Field(
        default=42, ge=0, le=2**32 - 1, description="Random seed for data order and init."
    )
    warmup_ratio: float = Field(
        default=0.1, ge=0, le=0.5, description="Fraction of steps spent warming up."
    )
    eval_split: float = Field(
        default=0.1,
        ge=0,
        le=0.5,
        description="Fraction of rows held out for evaluation (0 = none).",
    )


class EmbeddingHyperparameters(_Common):
    job_type: Literal[JobType.EMBEDDING] = JobType.EMBEDDING


class ClassifierHyperparameters(_Common):
    job_type: Literal[JobType.CLASSIFIER] = JobType.CLASSIFIER


class LoraHyperparameters(_Common):
    job_type: Literal[JobType.LLM_LORA] = JobType.LLM_LORA
    epochs: int = Field(default=1, ge=1, le=100, description="Passes over the training data.")
    learning_rate: float = Field(default=2e-4, gt=0, le=1e-2, description="Peak learning rate.")
    batch_size: int = Field(default=4, ge=1, le=256, description="Examples per device step.")
    max_seq_length: int = Field(
        default=1024, ge=8, le=32768, description="Tokens kept per example."
    )
    gradient_accumulation_steps: int = Field(
        default=4, ge=1, le=256, description="Steps per optimizer update."
    )
    lora_r: int = Field(default=16, ge=1, le=256, description="LoRA rank.")
    lora_alpha: int = Field(default=32, ge=1, le=1024, description="LoRA scaling numerator.")
    lora_dropout: float = Field(default=0.05, ge=0, le=0.5, description="Dropout on LoRA layers.")
    gradient_checkpointing: bool | None = Field(
        default=None,
        description=(
            "Recompute activations in the backward pass: less GPU memory, slower steps. "
            "Unset: on only when the run's estimated activations would not fit the GPU's free "
            "memory."
        ),
    )


Hyperparameters = Annotated[
    EmbeddingHyperparameters | ClassifierHyperparameters | LoraHyperparameters,
    Field(discriminator="job_type"),
]

_ADAPTER: TypeAdapter[Hyperparameters] = TypeAdapter(Hyperparameters)


def parse_hyperparameters(job_type: JobType, raw: dict[str, object] | None) -> Hyperparameters:
    """Validate `raw` for `job_type`, filling defaults. Raises pydantic.ValidationError."""
    payload = dict(raw or {})
    payload["job_type"] = job_type
    return _ADAPTER.validate_python(payload)
