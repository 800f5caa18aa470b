"""What the serving code needs of the engines (adapters/engines.py, lora_peft.py, lora_vllm.py),
so it holds no import of torch or of an HTTP client."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Message = dict[str, Any]


@dataclass(frozen=True)
class Classified:
    label: str
    score: float
    scores: dict[str, float]
    tokens: int = 0  # the text's tokens (usage)


@dataclass(frozen=True)
class Embedded:
    vector: Any  # little-endian float32 (a numpy row; orjson writes it), or a list of floats
    tokens: int  # the text's tokens (usage)


class Embedder(Protocol):
    def embed(self, texts: list[str]) -> list[Embedded]:
        """One vector per text, in order (blocking: run in a worker thread)."""
        ...


class Classifier(Protocol):
    def classify(self, texts: list[str]) -> list[Classified]:
        """One result per text, in order (blocking: run in a worker thread)."""
        ...


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # Passed through to a remote backend as is (vLLM's sampling extras); peft ignores them.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generated:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"


@dataclass(frozen=True)
class Piece:
    """One streamed piece of a generation; the last one carries the finish reason."""

    text: str
    finish_reason: str | None = None


class LoraBackend(Protocol):
    """LoRA adapters over shared base models: in this process (peft) or on a vLLM server."""

    name: str

    async def add_adapter(self, adapter: str, path: Path) -> None: ...

    async def remove_adapter(self, adapter: str) -> None: ...

    async def chat(
        self, adapter: str, messages: list[Message], params: GenerationParams
    ) -> Generated: ...

    async def complete(self, adapter: str, prompt: str, params: GenerationParams) -> Generated: ...

    def stream_chat(
        self, adapter: str, messages: list[Message], params: GenerationParams
    ) -> AsyncIterator[Piece]: ...

    def stream_complete(
        self, adapter: str, prompt: str, params: GenerationParams
    ) -> AsyncIterator[Piece]: ...

    async def close(self) -> None: ...


def trim_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` cut before the first stop string, and whether one was found."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
