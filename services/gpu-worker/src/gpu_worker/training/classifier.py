"""Classifier jobs: transformers' Trainer over AutoModelForSequenceClassification.

Held-out metrics are accuracy and macro F1. The baseline is the base encoder with its new, untrained
classification head (what a user would get without fine-tuning: near chance, reported as such).
The label mapping is saved in the model's config (id2label / label2id).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from datasets import Dataset as HFDataset
from sklearn.metrics import accuracy_score, f1_score
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    EvalPrediction,
    Trainer,
    TrainingArguments,
)

from contracts.enums import JobPhase
from gpu_worker.domain.errors import UserDataError
from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult
from gpu_worker.training import common, models
from gpu_worker.training.data import Dataset, split


def train_classifier(req: TrainRequest, hp: Any, data: Dataset, reporter: Reporter) -> TrainResult:
    train_rows, eval_rows = split(data.rows, hp.eval_split, hp.seed)
    labels = sorted({r["label"] for r in data.rows})
    label2id = {label: i for i, label in enumerate(labels)}
    unseen = sorted({r["label"] for r in eval_rows} - {r["label"] for r in train_rows})
    if unseen:  # a label seen only in the held-out rows cannot be learnt: keep it in training
        moved = [r for r in eval_rows if r["label"] in unseen]
        train_rows += moved
        eval_rows = [r for r in eval_rows if r["label"] not in unseen]
    if len(train_rows) < 2:
        raise UserDataError("fewer than 2 training rows are left after the held-out split")

    source = models.resolve(req.base_model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label={i: label for label, i in label2id.items()},
            label2id=label2id,
        )
    except (OSError, ValueError) as exc:
        raise models.load_error(req.base_model, exc) from exc
    common.check_stop(reporter)

    def encode(rows: list[dict[str, Any]]) -> HFDataset:
        ds = HFDataset.from_list([{"text": r["text"], "label": label2id[r["label"]]} for r in rows])
        return ds.map(
            lambda b: tokenizer(b["text"], truncation=True, max_length=hp.max_seq_length),
            batched=True,
            remove_columns=["text"],
        )

    train_ds = encode(train_rows)
    eval_ds = encode(eval_rows) if eval_rows else None
    args = TrainingArguments(**common.training_kwargs(req, hp))
    callback = common.progress_callback(reporter)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_compute_metrics,
        callbacks=[callback],
    )
    baseline: dict[str, float] = {}
    if eval_ds is not None and req.resume_from is None:
        common.report_phase(reporter, JobPhase.EVALUATING, 2.0, "evaluating the base model")
        with common.stoppable(model, reporter):
            baseline = _held_out(trainer)
    elif eval_ds is not None:
        # Resuming: the weights are a checkpoint's, not the base's; measure the base afresh.
        base = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(labels), id2label=model.config.id2label, label2id=label2id
        )
        with common.stoppable(base, reporter):
            baseline = _held_out(
                Trainer(
                    model=base,
                    args=args,
                    eval_dataset=eval_ds,
                    processing_class=tokenizer,
                    compute_metrics=_compute_metrics,
                    data_collator=DataCollatorWithPadding(tokenizer),
                )
            )
    common.check_stop(reporter)

    common.run_trainer(trainer, req, callback)
    tuned: dict[str, float] = {}
    if eval_ds is not None:
        common.report_phase(reporter, JobPhase.EVALUATING, 92.0, "evaluating the tuned model")
        with common.stoppable(trainer.model, reporter):
            tuned = _held_out(trainer)
    trainer.save_model(str(req.model_dir))
    tokenizer.save_pretrained(str(req.model_dir))
    counts: dict[str, int] = {}
    for r in data.rows:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    stats = common.split_stats(data.stats(), train_rows, eval_rows) | {
        "labels": labels,
        "label_counts": counts,
    }
    return common.train_result(req, trainer, tuned=tuned, baseline=baseline, data_stats=stats)


def _compute_metrics(pred: EvalPrediction) -> dict[str, float]:
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    predicted = np.argmax(logits, axis=-1)
    return {
        "accuracy": float(accuracy_score(pred.label_ids, predicted)),
        "f1_macro": float(f1_score(pred.label_ids, predicted, average="macro", zero_division=0)),
    }


def _held_out(trainer: Trainer) -> dict[str, float]:
    with common.translate_infra_errors():
        raw = trainer.evaluate()
    names = {"eval_accuracy": "accuracy", "eval_f1_macro": "f1_macro", "eval_loss": "eval_loss"}
    return {name: float(raw[key]) for key, name in names.items() if key in raw}
