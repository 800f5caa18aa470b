"""The one error envelope every service answers with, and the handlers that produce it.

Clients (the CLI, the web UI, workers) parse a single shape, `{"error": {code, message, details}}`,
whatever failed: a domain rule, FastAPI's own 404/405, request validation or a bug. The `code` is
the stable, machine-readable part; `message` is for humans and may change.
"""

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)

_CODES_BY_STATUS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
}


class ApiError(Exception):
    """An error meant for the client: raised anywhere below a route, rendered as the envelope."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"ApiError(status={self.status!r}, code={self.code!r}, message={self.message!r})"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """Build the envelope; routes documenting error responses use it too."""
    return {"error": {"code": code, "message": message, "details": details}}


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only loc/msg/type: pydantic's "input" (and "ctx", which can quote it) may hold a password
    # or token the client sent, and must never be echoed back or end up in a proxy's logs.
    return [
        {
            "loc": list(error.get("loc", ())),
            "message": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]


def _validation_message(details: list[dict[str, Any]]) -> str:
    if not details:
        return "Request validation failed."
    first = details[0]
    where = _location(first["loc"])
    summary = f"{where}: {first['message']}" if where else first["message"]
    more = len(details) - 1
    suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    return f"Request validation failed: {summary}{suffix}"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a non-standard status such as 499
        return "HTTP error"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    # jsonable_encoder: details often carry UUIDs and datetimes straight from the domain.
    body = error_body(exc.code, exc.message, jsonable_encoder(exc.details))
    return JSONResponse(status_code=exc.status, content=body)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, "http_error")
    # A structured detail (a dict, a list) moves to `details`; `message` stays a sentence.
    if isinstance(exc.detail, str):
        body = error_body(code, exc.detail)
    else:
        body = error_body(code, _phrase(exc.status_code), jsonable_encoder(exc.detail))
    return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    return JSONResponse(
        status_code=422,
        content=error_body("validation_error", _validation_message(details), details),
    )


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to our logs only; the client learns nothing about the internals.
    log.exception(
        "http.unhandled_error",
        method=request.method,
        path=request.url.path,
        exc_info=exc,
    )
    return JSONResponse(
        status_code=500,
        content=error_body("internal_error", "An unexpected error occurred."),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every failure of `app`, expected or not, answer with the envelope."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled_error)
