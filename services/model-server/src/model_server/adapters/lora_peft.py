"""LoRA adapters served in this process with peft: one loaded base model per base, shared by
every adapter trained on it (`load_adapter`), the request's adapter chosen with `set_adapter`
just before its generation. One generation at a time per base (a lock): on a CPU, concurrent
generations would only split the cores, and the active adapter is the model's state.

An adapter names its base as peft recorded it: a Hub id, a folder on this machine, or one of the
catalogue's offline bases (`ftd-local/tiny-llama`), which resolves to the same local folder the
worker trains on (contracts.offline_models: FTD_TINY_LLAMA_DIR, built there when absent).

torch, transformers and peft are imported only when the first adapter is loaded."""

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.offline_models import OfflineModelUnavailable, offline_model_path
from model_server.adapters.engines import default_device
from model_server.service_layer.engines import (
    Generated,
    GenerationParams,
    Message,
    Piece,
    trim_at_stop,
)


@dataclass
class _Base:
    model: Any  # a PeftModel holding every adapter of this base
    lock: threading.Lock = field(default_factory=threading.Lock)
    adapters: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Adapter:
    base: str
    tokenizer: Any


def base_of(path: Path) -> str:
    """The adapter's base model (a folder or a Hub id), as peft recorded it."""
    config = json.loads((path / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise ValueError(f"{path}: adapter_config.json names no base model")
    return base


def base_source(base: str) -> str:
    """What `from_pretrained` loads for an adapter's base: an offline catalogue entry's local
    folder, an existing folder as it is, else the name as a Hub id."""
    try:
        local = offline_model_path(base)
    except OfflineModelUnavailable as exc:
        raise ValueError(f"base model {base!r} is not available here: {exc}") from exc
    return local if local is not None else base


class PeftLora:
    name = "peft"

    def __init__(self, *, device: str | None = None, max_new_tokens: int = 512) -> None:
        self._device = device
        self._max_new_tokens = max_new_tokens
        self._bases: dict[str, _Base] = {}
        self._adapters: dict[str, _Adapter] = {}
        # Loading and unloading change the bases; generations hold a base's own lock.
        self._admin = threading.Lock()

    # -- loading ----------------------------------------------------------------------------

    async def add_adapter(self, adapter: str, path: Path) -> None:
        await asyncio.to_thread(self._add, adapter, path)

    async def remove_adapter(self, adapter: str) -> None:
        await asyncio.to_thread(self._remove, adapter)

    def _add(self, adapter: str, path: Path) -> None:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        base_name = base_of(path)
        source = base_source(base_name)
        has_tokenizer = (path / "tokenizer_config.json").is_file()
        tokenizer = AutoTokenizer.from_pretrained(str(path) if has_tokenizer else source)
        with self._admin:
            if adapter in self._adapters:
                self._remove_locked(adapter)
            # Keyed by the files loaded: a base named by its catalogue id and by its folder is
            # one model in memory.
            base = self._bases.get(source)
            if base is None:
                model = AutoModelForCausalLM.from_pretrained(source)
                model.to(default_device(self._device))
                model.eval()
                base = _Base(PeftModel.from_pretrained(model, str(path), adapter_name=adapter))
                self._bases[source] = base
            else:
                with base.lock:
                    base.model.load_adapter(str(path), adapter_name=adapter)
            base.adapters.add(adapter)
            self._adapters[adapter] = _Adapter(source, tokenizer)

    def _remove(self, adapter: str) -> None:
        with self._admin:
            self._remove_locked(adapter)

    def _remove_locked(self, adapter: str) -> None:
        found = self._adapters.pop(adapter, None)
        if found is None:
            return
        base = self._bases[found.base]
        with base.lock:
            base.adapters.discard(adapter)
            if not base.adapters:
                del self._bases[found.base]  # the last adapter: the base goes too
            else:
                base.model.delete_adapter(adapter)

    # -- generation -------------------------------------------------------------------------

    def _prompt(self, adapter: str, messages: list[Message] | None, prompt: str | None) -> str:
        tokenizer = self._adapters[adapter].tokenizer
        if messages is None:
            return prompt or ""
        if getattr(tokenizer, "chat_template", None):
            text: str = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return text
        turns = [f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages]
        return "\n".join([*turns, "assistant:"])

    def _kwargs(self, tokenizer: Any, params: GenerationParams) -> dict[str, Any]:
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": min(params.max_tokens, self._max_new_tokens),
            "do_sample": sample,
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        }
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=tokenizer)
        return kwargs

    def _generate(self, adapter: str, text: str, params: GenerationParams) -> Generated:
        import torch

        found = self._adapters[adapter]
        tokenizer, base = found.tokenizer, self._bases[found.base]
        inputs = tokenizer(text, return_tensors="pt").to(base.model.device)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        kwargs = self._kwargs(tokenizer, params)
        with base.lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            base.model.set_adapter(adapter)
            output = base.model.generate(**inputs, **kwargs)
        new = output[0][prompt_tokens:]
        completion, stopped = trim_at_stop(
            tokenizer.decode(new, skip_special_tokens=True), params.stop
        )
        length = not stopped and len(new) >= kwargs["max_new_tokens"]
        return Generated(completion, prompt_tokens, len(new), "length" if length else "stop")

    def _stream(self, adapter: str, text: str, params: GenerationParams) -> Iterator[Piece]:
        """Pieces as the model makes them (a blocking iterator, pulled from a thread)."""
        from transformers import TextIteratorStreamer

        found = self._adapters[adapter]
        tokenizer, base = found.tokenizer, self._bases[found.base]
        inputs = tokenizer(text, return_tensors="pt").to(base.model.device)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._kwargs(tokenizer, params)
        counted: list[int] = []

        def generate() -> None:
            import torch

            try:
                with base.lock, torch.inference_mode():
                    base.model.set_adapter(adapter)
                    output = base.model.generate(**inputs, streamer=streamer, **kwargs)
                counted.append(int(output.shape[1] - inputs["input_ids"].shape[1]))
            except BaseException:
                streamer.end()
                raise

        worker = threading.Thread(target=generate, name=f"generate-{adapter}", daemon=True)
        worker.start()
        sent = ""
        for delta in streamer:
            kept, stopped = trim_at_stop(sent + delta, params.stop)
            if kept[len(sent) :]:
                yield Piece(kept[len(sent) :])
            sent = kept
            if stopped:
                break
        worker.join()
        made = counted[0] if counted else 0
        yield Piece("", "length" if made >= kwargs["max_new_tokens"] else "stop")

    async def chat(
        self, adapter: str, messages: list[Message], params: GenerationParams
    ) -> Generated:
        text = self._prompt(adapter, messages, None)
        return await asyncio.to_thread(self._generate, adapter, text, params)

    async def complete(self, adapter: str, prompt: str, params: GenerationParams) -> Generated:
        return await asyncio.to_thread(self._generate, adapter, prompt, params)

    async def _pull(self, pieces: Iterator[Piece]) -> AsyncIterator[Piece]:
        done = object()
        while True:
            piece = await asyncio.to_thread(next, pieces, done)
            if piece is done:
                return
            assert isinstance(piece, Piece)
            yield piece

    def stream_chat(
        self, adapter: str, messages: list[Message], params: GenerationParams
    ) -> AsyncIterator[Piece]:
        return self._pull(self._stream(adapter, self._prompt(adapter, messages, None), params))

    def stream_complete(
        self, adapter: str, prompt: str, params: GenerationParams
    ) -> AsyncIterator[Piece]:
        return self._pull(self._stream(adapter, prompt, params))

    async def close(self) -> None:
        with self._admin:
            self._adapters.clear()
            self._bases.clear()
