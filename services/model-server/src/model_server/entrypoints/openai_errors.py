"""Errors on `/v1/` in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, which
OpenAI clients and LiteLLM read; every other path keeps the platform's envelope.

servicekit's app builder answers every error with the platform's envelope
(`{"error": {"code", "message", "details"}}`) and has no per-path hook, so this ASGI middleware,
outermost, rewrites the error answers of `/v1/` paths: whatever produced them (a route, the body
limit, authentication, validation, an outage) the code and sentence are the same, only the shape
differs. Successful answers and streams pass through untouched.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.openai_errors import reshape

PREFIX = "/v1/"


def rewrite(status: int, body: bytes) -> bytes:
    """The error answer's body in OpenAI's shape (left as it is if not the platform's envelope)."""
    return reshape(status, body) or body


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
