"""Errors on `/v1/` in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, which
OpenAI clients and LiteLLM read; every other path keeps the platform's envelope.

servicekit's app builder answers every error with the platform's envelope
(`{"error": {"code", "message", "details"}}`) and has no per-path hook, so this ASGI middleware,
outermost, rewrites the error answers of `/v1/` paths: whatever produced them (a route, the body
limit, authentication, validation, an outage) the code and sentence are the same, only the shape
differs. Successful answers and streams pass through untouched.
"""

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/v1/"
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error(status: int, code: str, message: str, param: str | None = None) -> bytes:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return orjson.dumps(body)


def _param(details: Any) -> str | None:
    """The first offending field of a validation error (`input`, `messages.0.content`)."""
    if isinstance(details, list) and details and isinstance(details[0], dict):
        loc = [str(p) for p in details[0].get("loc", []) if p != "body"]
        return ".".join(loc) or None
    return None


def rewrite(status: int, body: bytes) -> bytes:
    try:
        envelope = orjson.loads(body)["error"]
        code, message = str(envelope["code"]), str(envelope["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return body  # not the envelope: left as it is
    return openai_error(status, code, message, _param(envelope.get("details")))


class OpenAIErrorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None:
                await send(message)
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body = rewrite(start["status"], b"".join(chunks))
                    headers = [
                        (k, v)
                        for k, v in start.get("headers", [])
                        if k.lower() != b"content-length"
                    ]
                    headers.append((b"content-length", str(len(body)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, capture)
