"""LoRA adapters served by a vLLM OpenAI-compatible server (FTD_SERVE_LORA_BACKEND=vllm).

The vLLM server holds the base model and loads adapters at run time through its multi-LoRA API:
start it with `--enable-lora --max-loras N --max-lora-rank R` and the environment variable
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`, on a machine that sees this server's model store at the
same path (the adapter's folder is passed by path). Deploying calls `POST /v1/load_lora_adapter`
(`lora_name` = the model's `owner/name`, `lora_path` = its folder), undeploying
`POST /v1/unload_lora_adapter`; a request is sent to `/v1/chat/completions` or `/v1/completions`
with `model` set to the adapter's name, and its answer (or its SSE stream) is read back.

Not exercised by this repository's tests (no vLLM or GPU here); the peft backend is.
"""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from model_server.service_layer.engines import Generated, GenerationParams, Message, Piece

TIMEOUT = httpx.Timeout(300.0, connect=10.0)


class VllmBackendError(Exception):
    """vLLM refused or failed a call; the message carries its status and answer."""


class VllmLora:
    name = "vllm"

    def __init__(self, base_url: str, *, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=TIMEOUT
        )

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._client.post(path, json=body)
        if response.status_code >= 400:
            raise VllmBackendError(f"vLLM {path}: {response.status_code} {response.text[:300]}")
        answer: dict[str, Any] = response.json() if response.content else {}
        return answer

    async def add_adapter(self, adapter: str, path: Path) -> None:
        try:
            await self._post("/load_lora_adapter", {"lora_name": adapter, "lora_path": str(path)})
        except VllmBackendError as exc:
            if "already been loaded" not in str(exc):
                raise

    async def remove_adapter(self, adapter: str) -> None:
        await self._post("/unload_lora_adapter", {"lora_name": adapter})

    @staticmethod
    def _body(adapter: str, params: GenerationParams, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            **params.extra,
            **fields,
            "model": adapter,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    @staticmethod
    def _generated(answer: dict[str, Any], text: str) -> Generated:
        usage = answer.get("usage") or {}
        choice = (answer.get("choices") or [{}])[0]
        return Generated(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=str(choice.get("finish_reason") or "stop"),
        )

    async def chat(
        self, adapter: str, messages: list[Message], params: GenerationParams
    ) -> Generated:
        answer = await self._post(
            "/chat/completions", self._body(adapter, params, messages=messages)
        )
        message = (answer.get("choices") or [{}])[0].get("message") or {}
        return self._generated(answer, str(message.get("content") or ""))

    async def complete(self, adapter: str, prompt: str, params: GenerationParams) -> Generated:
        answer = await self._post("/completions", self._body(adapter, params, prompt=prompt))
        return self._generated(answer, str((answer.get("choices") or [{}])[0].get("text") or ""))

    async def _stream(self, path: str, body: dict[str, Any], chat: bool) -> AsyncIterator[Piece]:
        async with self._client.stream("POST", path, json={**body, "stream": True}) as response:
            if response.status_code >= 400:
                text = (await response.aread()).decode(errors="replace")[:300]
                raise VllmBackendError(f"vLLM {path}: {response.status_code} {text}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line.removeprefix("data:").strip()
                if data == "[DONE]":
                    return
                choice = (json.loads(data).get("choices") or [{}])[0]
                delta = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                yield Piece(str(delta or ""), choice.get("finish_reason"))

    def stream_chat(
        self, adapter: str, messages: list[Message], params: GenerationParams
    ) -> AsyncIterator[Piece]:
        return self._stream(
            "/chat/completions", self._body(adapter, params, messages=messages), chat=True
        )

    def stream_complete(
        self, adapter: str, prompt: str, params: GenerationParams
    ) -> AsyncIterator[Piece]:
        return self._stream("/completions", self._body(adapter, params, prompt=prompt), chat=False)

    async def close(self) -> None:
        await self._client.aclose()
