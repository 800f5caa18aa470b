"""The loaded models. torch, sentence-transformers and transformers are imported only here, when a
model is loaded (they are installed with the training stack, outside uv.lock)."""

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_worker.serve.sources import Kind


@dataclass(frozen=True)
class Classified:
    label: str
    score: float
    scores: dict[str, float]


class EmbeddingEngine:
    kind: Kind = "embedding"

    def __init__(self, path: Path, *, device: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self._model: Any = SentenceTransformer(str(path), device=device)
        # One forward pass at a time per model: the model is not made for concurrent calls.
        self._lock = threading.Lock()
        dimension = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self.dimensions = int(dimension() or 0)

    def count_tokens(self, texts: list[str]) -> int:
        tokenizer = self._model.tokenizer
        return sum(len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"])

    def embed(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            vectors = self._model.encode(texts, convert_to_numpy=True, normalize_embeddings=False)
        return [[float(x) for x in row] for row in vectors]


class ClassifierEngine:
    kind: Kind = "classifier"

    def __init__(self, path: Path, *, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._torch: Any = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(str(path))
        self._model: Any = AutoModelForSequenceClassification.from_pretrained(str(path))
        self._device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model.to(self._device)
        self._model.eval()
        self._lock = threading.Lock()
        config = self._model.config
        self.labels = [str(config.id2label[i]) for i in range(config.num_labels)]

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(ids) for ids in self._tokenizer(texts, truncation=True)["input_ids"])

    def classify(self, texts: list[str]) -> list[Classified]:
        torch = self._torch
        batch = self._tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        batch = {k: v.to(self._device) for k, v in batch.items()}
        with self._lock, torch.inference_mode():
            probabilities = torch.softmax(self._model(**batch).logits, dim=-1).cpu().tolist()
        results = []
        for row in probabilities:
            scores = {label: float(p) for label, p in zip(self.labels, row, strict=True)}
            best = max(scores, key=scores.__getitem__)
            results.append(Classified(label=best, score=scores[best], scores=scores))
        return results


Engine = EmbeddingEngine | ClassifierEngine


def load(path: Path, kind: Kind, *, device: str | None = None) -> Engine:
    if kind == "embedding":
        return EmbeddingEngine(path, device=device)
    return ClassifierEngine(path, device=device)
