"""The create route's dry-run answer: steps, and time on each kind of worker online."""

from typing import Literal

from pydantic import BaseModel, Field

from contracts.enums import JobType
from job_api.service_layer.estimates import JobEstimate, WarningCode


class WorkerKindEstimate(BaseModel):
    worker_kind: str = Field(
        description="`cpu`, a GPU's name as the worker advertises it (`2x <name>` for several), "
        "`unknown` for a worker that never said, or `gpu` for the GPU prior when none is online."
    )
    workers_online: int = Field(ge=0, description="Online workers of this kind that could take it.")
    seconds: float | None = Field(
        description="Wall-clock estimate on one such worker, claim to completion; null when the "
        "data's size is unknown (an external URL)."
    )
    basis: Literal["measured", "prior"] = Field(
        description="`measured`: the median of this kind's newest completed jobs of the same type "
        "and base model; `prior`: a documented default per job type, CPU or GPU."
    )
    sample_count: int = Field(ge=0, description="Completed jobs the measurement is the median of.")
    samples_per_second: float = Field(description="Training rows (x epochs) per second.")
    tokens_per_second: float | None = Field(
        description="Measured tokens per second, where uploads counted tokens."
    )


class EstimateWarningOut(BaseModel):
    code: WarningCode
    message: str


class JobEstimateResponse(BaseModel):
    dry_run: Literal[True] = True
    job_type: JobType
    base_model: str
    epochs: int
    batch_size: int
    train_rows: int | None = Field(description="Rows trained on (the held-out split removed).")
    eval_rows: int | None = Field(description="Rows held out for evaluation (eval_split).")
    train_tokens: int | None = Field(
        description="Estimated tokens in the training rows (one epoch), from the upload's count."
    )
    steps_per_epoch: int | None
    steps: int | None = Field(
        description="Optimizer steps: ceil(train_rows / batch_size) per epoch (LoRA: divided by "
        "gradient_accumulation_steps, rounded up) x epochs; null for an external URL."
    )
    estimates: list[WorkerKindEstimate]
    warnings: list[EstimateWarningOut]

    @classmethod
    def of(cls, e: JobEstimate) -> "JobEstimateResponse":
        w = e.work
        return cls(
            job_type=e.job_type,
            base_model=e.base_model,
            epochs=e.epochs,
            batch_size=e.batch_size,
            train_rows=w.train_rows if w else None,
            eval_rows=w.eval_rows if w else None,
            train_tokens=w.train_tokens if w else None,
            steps_per_epoch=w.steps_per_epoch if w else None,
            steps=w.steps if w else None,
            estimates=[
                WorkerKindEstimate(
                    worker_kind=k.worker_kind,
                    workers_online=k.workers_online,
                    seconds=None if k.seconds is None else round(k.seconds, 1),
                    basis=k.rate.basis,
                    sample_count=k.rate.sample_count,
                    samples_per_second=round(k.rate.samples_per_second, 4),
                    tokens_per_second=(
                        None
                        if k.rate.tokens_per_second is None
                        else round(k.rate.tokens_per_second, 2)
                    ),
                )
                for k in e.estimates
            ],
            warnings=[EstimateWarningOut(code=x.code, message=x.message) for x in e.warnings],
        )
