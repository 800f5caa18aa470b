"""ASGI middleware and dependencies every HTTP service puts in front of its routes.

- `BodyLimitMiddleware`: a request body larger than the limit is refused with 413
  `payload_too_large` while it is being read (or at once, from its Content-Length), before any
  route, dependency or authentication runs, so an anonymous client cannot make the process hold
  a huge body in memory.
- `RequestIdMiddleware`: one id per HTTP request, taken from the gateway's `X-Request-Id` when it
  sends a sane one, returned in the response header and bound into structlog's context so every
  log line of the request carries it.
- `JsonBodyMiddleware`: 415 `unsupported_media_type` for a body that is not declared as JSON.

Plain ASGI (no BaseHTTPMiddleware), so streaming responses are not buffered.
"""

import re
import uuid

import orjson
import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.events import traced
from servicekit.errors import error_body

REQUEST_ID_HEADER = "x-request-id"
# What we accept from a client or gateway as a request id: short, and safe in a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _too_large(limit: int) -> str:
    return f"The request body is larger than the {limit} bytes this service accepts."


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_too_large(send, limit)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises an HTTPException met while reading the body, so the
                    # app's error handler answers it (the envelope) and no route code runs.
                    raise HTTPException(413, _too_large(limit))
            return message

        await self.app(scope, limited, send)


async def _send_too_large(send: Send, limit: int) -> None:
    body = orjson.dumps(error_body("payload_too_large", _too_large(limit)))
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The body is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER.encode():
                candidate = value.decode("latin-1")
                if _REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k != REQUEST_ID_HEADER.encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        # The request starts a chain of work: the events written while handling it carry its id
        # as their correlation id (and cause), and so does what they cause in turn.
        with (
            structlog.contextvars.bound_contextvars(request_id=request_id),
            traced(request_id, request_id),
        ):
            await self.app(scope, receive, send_with_id)


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


# How much of a refused body is read before the 415 (below); a longer one is left unread.
_DRAIN_LIMIT = 1024 * 1024


async def _drain(receive: Receive) -> bool:
    """Reads and drops the rest of the request body, up to _DRAIN_LIMIT bytes (and never past the
    body limit outside, whose 413 ends it too). True when all of it was read."""
    read = 0
    try:
        while read <= _DRAIN_LIMIT:
            message = await receive()
            if message["type"] != "http.request":
                return False
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
    except HTTPException:
        return False
    return False


class JsonBodyMiddleware:
    """A request that carries a body on a JSON API must say it is JSON: anything else is a 415
    `unsupported_media_type` naming the expected type, before any route code or auth runs.
    `exempt` path prefixes (uploads) are left alone.

    The refused body is read first (up to 1 MiB): a server that answers and closes while a
    client's body is still arriving makes the kernel reset the connection, and the client loses
    the 415 it had not read yet. Read, the connection stays open for the next request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        methods: tuple[str, ...] = ("POST", "PUT", "PATCH"),
        exempt: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.methods = methods
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in self.methods
            and not scope["path"].startswith(self.exempt or ("\x00",))
        ):
            headers = dict(scope["headers"])
            has_body = (
                headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
            )
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            if has_body and not _is_json(content_type):
                whole = await _drain(receive)
                media = content_type.partition(";")[0].strip() or "no Content-Type"
                body = orjson.dumps(
                    error_body(
                        "unsupported_media_type",
                        f"Send the body as application/json (got {media}).",
                        {"expected": "application/json"},
                    )
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 415,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"accept", b"application/json"),
                            # A body left unread: the connection cannot be reused.
                            *([] if whole else [(b"connection", b"close")]),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
