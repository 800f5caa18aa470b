"""Errors of the OpenAI-compatible routes (data-service's /v1/files, job-api's
/v1/fine_tuning/jobs) in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, which
the `openai` package turns into its typed errors (BadRequestError, AuthenticationError,
NotFoundError, ...).

A router of such routes uses `OpenAIRoute` (or a subclass naming the service's fields in OpenAI's
terms, `param_names`): whatever a route or one of its dependencies raises (an ApiError, a
DomainError, a validation error, a 401, an outage) is rendered by the app's own handler first, so
the status, code, sentence and headers are exactly the platform's; then only the body is reshaped.
Two deliberate differences: a 422 becomes a 400 (OpenAI answers every invalid request with 400),
and a 409 without Retry-After carries `x-should-retry: false` (the `openai` package retries 409s
unless told not to; a conflict such as a file still in use or cancelling a finished job does not
resolve itself a second later, while `dataset_not_ready` carries Retry-After and is retried). What
answers before any route runs (the body size limit, the JSON body check, an unknown path) keeps the
platform's envelope.
"""

import inspect
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ClassVar

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

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


class OpenAIError(BaseModel):
    message: str = Field(description="A sentence for humans.")
    type: str = Field(description="invalid_request_error, authentication_error, server_error...")
    param: str | None = Field(description="The offending parameter, where there is one.")
    code: str | None = Field(description="The platform's machine-readable code.")


class OpenAIErrorBody(BaseModel):
    """An error in OpenAI's shape."""

    error: OpenAIError


def openai_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these statuses, in OpenAI's error shape."""
    return {
        s: {"description": "An error, in OpenAI's shape.", "model": OpenAIErrorBody}
        for s in statuses
    }


def _param(details: Any, names: Mapping[str, str]) -> str | None:
    """The offending field: a validation error's first location, or the `param` or `field` an
    error named (in OpenAI's terms)."""
    name: str | None = None
    if isinstance(details, dict):
        found = details.get("param", details.get("field"))
        name = found if isinstance(found, str) else None
    elif isinstance(details, list) and details and isinstance(details[0], dict):
        loc = [str(p) for p in details[0].get("loc", []) if p not in ("body", "query", "path")]
        name = ".".join(loc) or None
    return names.get(name, name) if name else None


def openai_error(status: int, code: str, message: str, param: str | None = None) -> bytes:
    """An error body in OpenAI's shape for this status."""
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def reshape(status: int, body: bytes, param_names: Mapping[str, str] | None = None) -> bytes | None:
    """The platform's error envelope in `body` as OpenAI's error body; None where `body` is not
    the envelope."""
    try:
        envelope = orjson.loads(body)["error"]
        code, message = str(envelope["code"]), str(envelope["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return openai_error(status, code, message, _param(envelope.get("details"), param_names or {}))


def openai_shaped(response: Response, param_names: Mapping[str, str] | None = None) -> Response:
    """The platform's error answer with OpenAI's body (left alone if it is not the envelope);
    `param_names` renames the platform's fields as OpenAI's requests name them."""
    status = 400 if response.status_code == 422 else response.status_code
    body = reshape(status, bytes(response.body), param_names)
    if body is None:
        return response
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() not in ("content-length", "content-type")
    }
    if status == 409 and "retry-after" not in {k.lower() for k in headers}:
        headers["x-should-retry"] = "false"
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _handler_for(request: Request, exc: Exception) -> Callable[..., Any] | None:
    handlers: dict[Any, Callable[..., Any]] = request.app.exception_handlers
    for kind in type(exc).__mro__:
        if kind in handlers:
            return handlers[kind]
    return None


class OpenAIRoute(APIRoute):
    """A route whose error answers are in OpenAI's shape (see the module's docstring)."""

    # The platform's field names, as OpenAI's requests name them (for `param`).
    param_names: ClassVar[Mapping[str, str]] = {}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_openai(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                render = _handler_for(request, exc)
                if render is None:
                    raise
                rendered = render(request, exc)
                # The app's handlers may be plain functions (Starlette allows both).
                if inspect.isawaitable(rendered):
                    rendered = await rendered
                return openai_shaped(rendered, self.param_names)

        return handle_openai
