"""A stop is obeyed within one forward pass in every evaluation (the base model's before
training, the tuned model's after, sample generation): the real libraries' evaluators on the
offline MiniLM, stopped part-way. Counted in forward passes, never in seconds."""

import os
from typing import Any

import pytest

pytestmark = [pytest.mark.training, pytest.mark.timeout(300)]

torch = pytest.importorskip("torch")

from gpu_worker.domain.errors import StopRequested  # noqa: E402
from gpu_worker.training import common, models  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


class StopAfter:
    """A reporter whose stop request arrives after `n` checks (a cancel mid-evaluation)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.checks = 0

    def should_stop(self) -> bool:
        self.checks += 1
        return self.checks > self.n

    def progress(self, **_: Any) -> None:
        pass


def _counting(module: Any) -> list[int]:
    calls = [0]

    def count(*_: object) -> None:
        calls[0] += 1

    module.register_forward_pre_hook(count)
    return calls


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def test_an_embedding_evaluation_stops_at_the_next_batch() -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(models.resolve(MINILM), device="cpu")
    sentences = [f"how do I reset my password, variant {i}" for i in range(640)]
    batches = _counting(model[0])
    reporter = StopAfter(3)

    with pytest.raises(StopRequested), common.stoppable(model, reporter):
        model.encode(sentences, batch_size=16)

    # 40 batches asked for; the stop came with the 4th check (the model and its first module
    # are both hooked): the encode ended there instead of running on.
    assert batches[0] <= 3
    # Outside the block the model works as before: the hooks are gone.
    assert model.encode(["still usable"]).shape == (1, 384)


def test_a_classifier_evaluation_stops_at_the_next_batch(tmp_path: Any) -> None:
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    path = models.resolve(MINILM)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    rows = [{"text": f"review number {i} was fine", "label": i % 2} for i in range(256)]
    data = Dataset.from_list(rows).map(
        lambda r: tokenizer(r["text"], truncation=True), remove_columns=["text"]
    )
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(tmp_path), per_device_eval_batch_size=8, report_to=[], use_cpu=True
        ),
        eval_dataset=data,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    batches = _counting(model)

    with pytest.raises(StopRequested), common.stoppable(model, StopAfter(2)):
        trainer.evaluate()

    assert batches[0] <= 2  # of 32 evaluation batches
