"""Calling deployed models through the client against httpx's MockTransport: the /v1 bodies sent,
the OpenAI-shaped answers read (no envelope), a chat streamed piece by piece up to `[DONE]`, a
model still loading (503) retried, and an undeployed name raised as NotFound with its code."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from ftd import AsyncClient, BadRequest, Client, NotFound

USAGE = {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> Client:
    return Client("http://ftd.test", "tok", transport=httpx.MockTransport(handler), retries=2)


def test_embed_sends_the_texts_and_reads_one_vector_per_text() -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/embeddings"
        assert request.headers["Authorization"] == "Bearer tok"
        sent.append(json.loads(request.content))
        data = [
            {"object": "embedding", "index": 1, "embedding": [0.5, 0.25]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
        ]
        return httpx.Response(
            200, json={"object": "list", "data": data, "model": "alice/e", "usage": USAGE}
        )

    with client(handler) as ftd:
        result = ftd.models.embed("alice/e", ["a", "b"])
    assert sent == [{"model": "alice/e", "input": ["a", "b"], "encoding_format": "float"}]
    assert result.vectors == [[1.0, 0.0], [0.5, 0.25]]
    assert result.usage.total_tokens == 3


def test_classify_retries_while_the_model_loads_then_reads_the_labels() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        assert json.loads(request.content) == {"model": "alice/c", "input": ["great"]}
        if calls == 1:
            error = {"message": "loading", "type": "server_error", "code": "model_loading"}
            return httpx.Response(503, json={"error": error}, headers={"Retry-After": "0"})
        item = {"index": 0, "label": "pos", "score": 0.9, "scores": {"pos": 0.9, "neg": 0.1}}
        return httpx.Response(
            200, json={"object": "list", "data": [item], "model": "alice/c", "usage": USAGE}
        )

    with client(handler) as ftd:
        result = ftd.models.classify("alice/c", "great")
    assert calls == 2
    assert [(c.label, c.score, c.scores) for c in result.data] == [
        ("pos", 0.9, {"pos": 0.9, "neg": 0.1})
    ]


def test_an_undeployed_model_raises_not_found_with_its_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        error = {
            "message": "No deployed model alice/x.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_deployed",
        }
        return httpx.Response(404, json={"error": error})

    with client(handler) as ftd, pytest.raises(NotFound) as raised:
        ftd.models.embed("alice/x", "hi")
    assert raised.value.code == "model_not_deployed"
    assert raised.value.status == 404


def chunk(content: str | None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    body = {
        "object": "chat.completion.chunk",
        "model": "alice/l",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


STREAM = (
    'data: {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}\n\n'
    + chunk("Hel")
    + ": ping\n\n"
    + chunk("lo")
    + chunk(None, "stop")
    + "data: [DONE]\n\n"
)


def chat_handler(sent: list[dict[str, Any]]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        body = json.loads(request.content)
        sent.append(body)
        if body["stream"]:
            return httpx.Response(
                200, content=STREAM.encode(), headers={"Content-Type": "text/event-stream"}
            )
        answer = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "alice/l",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello"},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
        return httpx.Response(200, json=answer)

    return handler


def test_chat_answers_whole_or_streamed_piece_by_piece() -> None:
    sent: list[dict[str, Any]] = []
    with client(chat_handler(sent)) as ftd:
        whole = ftd.models.chat("alice/l", "hi", max_tokens=8)
        pieces = list(ftd.models.chat("alice/l", [{"role": "user", "content": "hi"}], stream=True))
    assert whole.content == "Hello"
    assert pieces == ["Hel", "lo"]
    assert sent[0] == {
        "model": "alice/l",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "max_tokens": 8,
    }
    assert sent[1]["stream"] is True


def test_a_refused_chat_stream_raises_before_any_piece() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        error = {
            "message": "not a chat model",
            "type": "invalid_request_error",
            "code": "wrong_model_type",
        }
        return httpx.Response(400, json={"error": error})

    with client(handler) as ftd:
        stream = ftd.models.chat("alice/e", "hi", stream=True)
        with pytest.raises(BadRequest) as raised:
            next(stream)
    assert raised.value.code == "wrong_model_type"


def test_the_async_client_streams_a_chat_too() -> None:
    sent: list[dict[str, Any]] = []

    async def go() -> tuple[str, list[str]]:
        transport = httpx.MockTransport(chat_handler(sent))
        async with AsyncClient("http://ftd.test", "tok", transport=transport) as ftd:
            whole = await ftd.models.chat("alice/l", "hi")
            stream = await ftd.models.chat("alice/l", "hi", stream=True)
            return whole.content, [piece async for piece in stream]

    assert asyncio.run(go()) == ("Hello", ["Hel", "lo"])
