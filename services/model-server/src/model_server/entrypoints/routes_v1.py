"""The OpenAI-style API: `/v1/embeddings`, `/v1/classify`, `/v1/chat/completions`,
`/v1/completions` (stream=true: server-sent events in OpenAI's chunk format, ending with
`data: [DONE]`) and `/v1/models` (the caller's deployed models). Errors are in OpenAI's shape
(entrypoints.openai_errors)."""

import base64
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Response
from sse_starlette.sse import EventSourceResponse

from model_server.domain.deployments import Kind
from model_server.entrypoints.deps import CallerDep, StateDep
from model_server.entrypoints.schemas import (
    MAX_INPUT_CHARS,
    MAX_INPUTS,
    ChatRequest,
    ClassifyRequest,
    CompletionRequest,
    EmbeddingRequest,
    Texts,
)
from model_server.service_layer.engines import GenerationParams, Piece
from servicekit.errors import ApiError

router = APIRouter(prefix="/v1", tags=["openai"])


def _texts(value: Texts) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise ApiError(400, "empty_input", "`input` must hold at least one text.")
    if len(texts) > MAX_INPUTS:
        raise ApiError(400, "too_many_inputs", f"At most {MAX_INPUTS} texts per request.")
    if any(len(t) > MAX_INPUT_CHARS for t in texts):
        raise ApiError(
            400, "input_too_long", f"A text may hold at most {MAX_INPUT_CHARS} characters."
        )
    return texts


def _encode(vector: Any, encoding: str) -> Any:
    """A float32 row as is (orjson writes a numpy row without a Python float per value), or
    base64 of its little-endian float32 bytes."""
    if encoding == "base64":
        raw = (
            vector.tobytes()
            if hasattr(vector, "tobytes")
            else struct.pack(f"<{len(vector)}f", *vector)
        )
        return base64.b64encode(raw).decode("ascii")
    return vector


class _Json(Response):
    """A JSON answer written by orjson in one call (numpy rows included). The route's declared
    `response_model` still documents it; FastAPI does not re-validate a Response it is handed,
    which for 32 vectors of 384 floats cost more than the forward pass."""

    media_type = "application/json"

    def __init__(self, content: dict[str, Any]) -> None:
        super().__init__(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY))


@router.get("/models")
async def list_models(caller: CallerDep, state: StateDep) -> dict[str, Any]:
    """The caller's deployed models (loaded or still loading on this server)."""
    return {
        "object": "list",
        "data": [
            {
                "id": d.name,
                "object": "model",
                "created": int(d.changed_at.timestamp()),
                "owned_by": d.user_id,
                "ftd_type": d.kind.value,
                "ftd_model_id": str(d.model_id),
                "ftd_revision": d.revision,
                "ftd_loaded": state.pool.is_loaded(d.model_id),
            }
            for d in state.pool.deployed_for(caller)
        ],
    }


@router.post("/embeddings", response_model=dict[str, Any])
async def embeddings(body: EmbeddingRequest, caller: CallerDep, state: StateDep) -> Response:
    """OpenAI-compatible embeddings of one of the caller's deployed embedding models."""
    loaded = state.pool.get(caller=caller, name=body.model, kind=Kind.EMBEDDING)
    assert loaded.embedder is not None
    rows = await loaded.embedder.submit(_texts(body.input))
    tokens = sum(r.tokens for r in rows)
    return _Json(
        {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": _encode(r.vector, body.encoding_format),
                }
                for i, r in enumerate(rows)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


@router.post("/classify", response_model=dict[str, Any])
async def classify(body: ClassifyRequest, caller: CallerDep, state: StateDep) -> Response:
    """Text classification: per input, the best label and every label's probability."""
    loaded = state.pool.get(caller=caller, name=body.model, kind=Kind.CLASSIFIER)
    assert loaded.classifier is not None
    results = await loaded.classifier.submit(_texts(body.input))
    tokens = sum(r.tokens for r in results)
    return _Json(
        {
            "object": "list",
            "data": [
                {"index": i, "label": r.label, "score": r.score, "scores": r.scores}
                for i, r in enumerate(results)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _params(body: ChatRequest | CompletionRequest) -> GenerationParams:
    stop = body.stop if isinstance(body.stop, list) else [body.stop] if body.stop else []
    return GenerationParams(
        max_tokens=body.max_completion_tokens or body.max_tokens or 64,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=tuple(stop[:4]),
        seed=body.seed,
    )


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _sse(
    pieces: AsyncIterator[Piece], *, model: str, chat: bool, created: int
) -> EventSourceResponse:
    """OpenAI's stream: one `data:` chunk per piece (chat: the first carries the role), the
    finish reason in the last, then `data: [DONE]`."""
    prefix = "chatcmpl" if chat else "cmpl"
    ident = f"{prefix}-{uuid.uuid4().hex}"
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(text: str | None, finish: str | None, first: bool = False) -> str:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
            if text:
                delta["content"] = text
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish}
        body = {"id": ident, "object": kind, "created": created, "model": model}
        return orjson.dumps({**body, "choices": [choice]}).decode()

    async def events() -> AsyncIterator[dict[str, str]]:
        if chat:
            yield {"data": chunk(None, None, first=True)}
        async for piece in pieces:
            if piece.text or piece.finish_reason:
                yield {"data": chunk(piece.text, piece.finish_reason)}
        yield {"data": "[DONE]"}

    return EventSourceResponse(events(), ping=15)


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatRequest, caller: CallerDep, state: StateDep
) -> dict[str, Any] | EventSourceResponse:
    """Chat with one of the caller's deployed LoRA models (OpenAI-compatible)."""
    loaded = state.pool.get(caller=caller, name=body.model, kind=Kind.LORA)
    lora = state.pool.loaders.lora
    messages = [m.model_dump() for m in body.messages]
    params, created = _params(body), int(time.time())
    if body.stream:
        pieces = lora.stream_chat(loaded.adapter, messages, params)
        return _sse(pieces, model=body.model, chat=True, created=created)
    out = await lora.chat(loaded.adapter, messages, params)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": out.text},
                "finish_reason": out.finish_reason,
            }
        ],
        "usage": _usage(out.prompt_tokens, out.completion_tokens),
    }


@router.post("/completions", response_model=None)
async def completions(
    body: CompletionRequest, caller: CallerDep, state: StateDep
) -> dict[str, Any] | EventSourceResponse:
    """Text completion with one of the caller's deployed LoRA models (OpenAI-compatible)."""
    loaded = state.pool.get(caller=caller, name=body.model, kind=Kind.LORA)
    lora = state.pool.loaders.lora
    params, created = _params(body), int(time.time())
    if body.stream:
        pieces = lora.stream_complete(loaded.adapter, body.prompt, params)
        return _sse(pieces, model=body.model, chat=False, created=created)
    out = await lora.complete(loaded.adapter, body.prompt, params)
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": created,
        "model": body.model,
        "choices": [
            {"index": 0, "text": out.text, "finish_reason": out.finish_reason, "logprobs": None}
        ],
        "usage": _usage(out.prompt_tokens, out.completion_tokens),
    }
