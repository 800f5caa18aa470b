"""Embedding and classification engines. torch, sentence-transformers and transformers are
imported only here, when a model is loaded (the inference stack is installed outside uv.lock,
scripts/install-training.sh). Each engine runs one forward pass at a time (the tokenizer
included: a fast tokenizer is not safe to call from two threads at once): callers run these
methods in a worker thread, through a MicroBatcher."""

import os
import threading
from pathlib import Path
from typing import Any

from model_server.service_layer.engines import Classified, Embedded


def passive_openmp() -> None:
    """Idle OpenMP threads sleep instead of spin-waiting (OMP_WAIT_POLICY=PASSIVE, unless the
    environment says otherwise). OpenMP reads it once, when torch loads: call this before. torch's
    spinning threads otherwise compete with the event loop, the tokenizer and the HTTP work for
    the cores (on two cores a one-text forward cost 5x its CPU)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def default_torch_threads() -> int:
    """Every CPU where idle threads sleep (passive_openmp); else one fewer, so a spinning torch
    leaves a core to the event loop."""
    cpus = os.cpu_count() or 1
    if os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE":
        return cpus
    return max(1, cpus - 1)


def set_torch_threads(threads: int | None) -> int:
    """torch's intra-op threads for this process (default: default_torch_threads()); returns the
    number set."""
    import torch

    wanted = threads or default_torch_threads()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted


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

    def embed(self, texts: list[str]) -> list[Embedded]:
        with self._lock:
            # No progress bar: sentence-transformers draws one (tqdm, to stderr) on every call
            # when its logger is at INFO, as the service's is; that cost more than the forward.
            vectors = self._model.encode(
                texts, convert_to_numpy=True, batch_size=64, show_progress_bar=False
            )
            ids = self._model.tokenizer(texts, truncation=True)["input_ids"]
        rows = vectors.astype("<f4", copy=False)
        return [Embedded(row, len(i)) for row, i in zip(rows, ids, strict=True)]

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

    def classify(self, texts: list[str]) -> list[Classified]:
        torch = self._torch
        with self._lock, torch.inference_mode():
            batch = self._tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            tokens = batch["attention_mask"].sum(dim=1).tolist()
            batch = {k: v.to(self._device) for k, v in batch.items()}
            probabilities = torch.softmax(self._model(**batch).logits, dim=-1).cpu().tolist()
        results = []
        for row, count in zip(probabilities, tokens, strict=True):
            scores = {label: float(p) for label, p in zip(self.labels, row, strict=True)}
            best = max(scores, key=scores.__getitem__)
            results.append(Classified(label=best, score=scores[best], scores=scores, tokens=count))
        return results

    def close(self) -> None:
        self._model = None
