"""Embedding jobs: sentence-transformers' SentenceTransformerTrainer.

- anchor/positive[/negative] pairs or triplets: MultipleNegativesRankingLoss (in-batch negatives);
  held-out metric: retrieval accuracy@1 and MRR@10 of each anchor against the held-out positives.
- single `text`: SimCSE (each text paired with itself; dropout makes the two views differ) with
  MultipleNegativesRankingLoss; held-out metric: retrieving each held-out text from a copy with
  a third of its words dropped (accuracy@1, MRR@10).
- sentence1/sentence2/score: CoSENTLoss; held-out metric: Spearman correlation of cosine scores.
"""

from __future__ import annotations

import random
from typing import Any

from datasets import Dataset as HFDataset
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
from sentence_transformers import SentenceTransformerTrainingArguments as Args
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.sentence_transformer.evaluation import (
    EmbeddingSimilarityEvaluator,
    InformationRetrievalEvaluator,
)
from sentence_transformers.sentence_transformer.losses import (
    CoSENTLoss,
    MultipleNegativesRankingLoss,
)

from contracts.enums import JobPhase
from gpu_worker.domain.errors import UserDataError
from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult
from gpu_worker.training import common, models
from gpu_worker.training.data import Dataset, Layout, Row, split

Evaluator = Any  # InformationRetrievalEvaluator | EmbeddingSimilarityEvaluator (untyped here)


def train_embedding(req: TrainRequest, hp: Any, data: Dataset, reporter: Reporter) -> TrainResult:
    train_rows, eval_rows = split(data.rows, hp.eval_split, hp.seed)
    try:
        model = SentenceTransformer(models.resolve(req.base_model), device=None)
    except (OSError, ValueError) as exc:
        raise models.load_error(req.base_model, exc) from exc
    model.max_seq_length = hp.max_seq_length
    common.check_stop(reporter)

    evaluator = _evaluator(data.layout, eval_rows, hp.seed, hp.batch_size)
    baseline: dict[str, float] = {}
    if evaluator is not None:
        common.report_phase(reporter, JobPhase.EVALUATING, 2.0, "evaluating the base model")
        with common.stoppable(model, reporter):
            baseline = _metrics(evaluator, model)
        common.check_stop(reporter)

    if data.layout is Layout.SCORED_PAIRS:
        loss: Any = CoSENTLoss(model)
        columns = ["sentence1", "sentence2", "score"]
    else:
        loss = MultipleNegativesRankingLoss(model)
        columns = ["anchor", "positive"] + (["negative"] if data.layout is Layout.TRIPLETS else [])
    if data.layout is Layout.TEXTS:
        train_rows = [{"anchor": r["text"], "positive": r["text"]} for r in train_rows]
    if len(train_rows) < 2:
        raise UserDataError("fewer than 2 training rows are left after the held-out split")
    dataset = HFDataset.from_list([{c: r[c] for c in columns} for r in train_rows])

    args = Args(
        **common.training_kwargs(req, hp),
        # In-batch negatives must not be the anchor's own text (SimCSE pairs excepted: the sampler
        # looks across rows only).
        batch_sampler=BatchSamplers.NO_DUPLICATES
        if data.layout is not Layout.SCORED_PAIRS
        else BatchSamplers.BATCH_SAMPLER,
    )
    callback = common.progress_callback(reporter)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[callback]
    )
    common.run_trainer(trainer, req, callback)

    tuned: dict[str, float] = {}
    if evaluator is not None:
        common.report_phase(reporter, JobPhase.EVALUATING, 92.0, "evaluating the tuned model")
        with common.stoppable(model, reporter):
            tuned = _metrics(evaluator, model)
    model.save(str(req.model_dir))
    stats = common.split_stats(data.stats(), train_rows, eval_rows)
    return common.train_result(req, trainer, tuned=tuned, baseline=baseline, data_stats=stats)


def _evaluator(layout: Layout, rows: list[Row], seed: int, batch_size: int) -> Evaluator | None:
    if len(rows) < 2:
        return None
    if layout is Layout.SCORED_PAIRS:
        return EmbeddingSimilarityEvaluator(
            [r["sentence1"] for r in rows],
            [r["sentence2"] for r in rows],
            [r["score"] for r in rows],
            batch_size=batch_size,
            name="heldout",
            write_csv=False,
        )
    if layout is Layout.TEXTS:
        rng = random.Random(seed)  # noqa: S311 (data augmentation, not a secret)
        queries = {f"q{i}": _drop_words(r["text"], rng) for i, r in enumerate(rows)}
        corpus = {f"d{i}": r["text"] for i, r in enumerate(rows)}
    else:
        queries = {f"q{i}": r["anchor"] for i, r in enumerate(rows)}
        corpus = {f"d{i}": r["positive"] for i, r in enumerate(rows)}
        for i, r in enumerate(rows):
            if "negative" in r:
                corpus[f"n{i}"] = r["negative"]
    relevant = {f"q{i}": {f"d{i}"} for i in range(len(rows))}
    return InformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        mrr_at_k=[10],
        ndcg_at_k=[10],
        accuracy_at_k=[1, 5],
        precision_recall_at_k=[1],
        map_at_k=[10],
        batch_size=batch_size,
        name="heldout",
        write_csv=False,
    )


def _metrics(evaluator: Evaluator, model: SentenceTransformer) -> dict[str, float]:
    """The headline held-out numbers under stable names."""
    raw = evaluator(model)
    wanted = {
        "heldout_cosine_accuracy@1": "retrieval_accuracy@1",
        "heldout_cosine_accuracy@5": "retrieval_accuracy@5",
        "heldout_cosine_mrr@10": "retrieval_mrr@10",
        "heldout_cosine_ndcg@10": "retrieval_ndcg@10",
        "heldout_spearman_cosine": "spearman_cosine",
        "heldout_pearson_cosine": "pearson_cosine",
    }
    return {name: float(raw[key]) for key, name in wanted.items() if key in raw}


def _drop_words(text: str, rng: random.Random) -> str:
    words = text.split()
    if len(words) < 3:
        return text
    kept = [w for w in words if rng.random() > 1 / 3]
    return " ".join(kept or words[:1])
