"""Embedding and classification engines. torch, sentence-transformers and transformers are
imported only here, when a model is loaded (the inference stack is installed outside uv.lock,
scripts/install-training.sh). Each engine runs one forward pass at a time: callers run these
methods in a worker thread."""

import threading
from pathlib import Path
from typing import Any

from model_server.service_layer.engines import Classified


def default_device(device: str | None) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEngine:
    def __init__(self, path: Path, *, device: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer

        self._model: Any = SentenceTransformer(str(path), device=default_device(device))
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
            vectors = self._model.encode(texts, convert_to_numpy=True, batch_size=64)
        rows: list[list[float]] = vectors.tolist()
        return rows

    def close(self) -> None:
        self._model = None


class SequenceClassifierEngine:
    def __init__(self, path: Path, *, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._torch: Any = torch
        self._device = default_device(device)
        self._tokenizer: Any = AutoTokenizer.from_pretrained(str(path))
        self._model: Any = AutoModelForSequenceClassification.from_pretrained(str(path))
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

    def close(self) -> None:
        self._model = None
