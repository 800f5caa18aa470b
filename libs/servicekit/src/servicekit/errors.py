"""The one error envelope every service answers with, and the handlers that produce it.

Clients (the CLI, the web UI, workers) parse a single shape, `{"error": {code, message, details}}`,
whatever failed: a domain rule, FastAPI's own 404/405, request validation, an outage or a bug. The
`code` is the stable, machine-readable part; `message` is for humans and may change.

An outage is not a bug: when the database (or another backing service) cannot be reached, the
request is answered 503 `service_unavailable` with `Retry-After`, never a 500 with a traceback.
What counts as an outage is the classification the event consumers use
(`messaging.consumer.is_infrastructure_error`: connection errors of asyncpg and SQLAlchemy, OSError,
timeouts, the pool's checkout timeout), less the OSErrors that name a file, plus the refusals a
connection meets when the service's database is gone or no longer lets its role in.
"""

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
import sqlalchemy.exc
import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from messaging.consumer import is_infrastructure_error
from servicekit.domain import DomainError

log = structlog.get_logger(__name__)

# How long a client is told to wait before it retries a request refused for an outage.
RETRY_AFTER_SECONDS = 5
# OSErrors about a file (a missing dataset file, a permission) are bugs or data, not outages.
_FILE_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
# Refused while connecting: the database was dropped (or is being restored), or the role was
# dropped or its password changed. No request can succeed until the operator acts: an outage.
_CONNECT_REFUSALS = (
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # InvalidPasswordError too
)
# The exception types an outage surfaces as. Handled here, below Starlette's ServerErrorMiddleware,
# so the answer is a plain response (no re-raise, no traceback, the connection kept); whatever of
# them is not an outage is answered as any unexpected error.
_OUTAGE_TYPES: tuple[type[Exception], ...] = (
    OSError,  # ConnectionError, TimeoutError, socket.gaierror
    sqlalchemy.exc.DBAPIError,  # OperationalError, InterfaceError, ...
    sqlalchemy.exc.TimeoutError,  # the pool's checkout timeout
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # CannotConnectNowError: starting, shutting down
    asyncpg.exceptions.InsufficientResourcesError,  # TooManyConnectionsError
)

_CODES_BY_STATUS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}

# Every 401 tells the client how to authenticate (RFC 9110 section 11.6.1).
WWW_AUTHENTICATE = {"WWW-Authenticate": "Bearer"}


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


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    """The envelope as a response; a 401 says how to authenticate."""
    # jsonable_encoder: details often carry UUIDs and datetimes straight from the domain.
    body = error_body(code, message, jsonable_encoder(details))
    headers = WWW_AUTHENTICATE if status == 401 else None
    return JSONResponse(status_code=status, content=body, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return error_response(exc.status, exc.code, str(exc), exc.details)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says a backing service could not be reached, not that the request or the
    code is wrong."""
    if isinstance(exc, _FILE_ERRORS):
        return False
    return is_infrastructure_error(exc) or _caused_by(exc, _CONNECT_REFUSALS)


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """`exc` or anything in its chain (SQLAlchemy wraps the driver's error two levels deep)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _unavailable(request: Request, exc: BaseException) -> JSONResponse:
    # One line per refused request, no traceback: an outage repeats for every request.
    log.warning(
        "http.service_unavailable",
        method=request.method,
        path=request.url.path,
        error=type(exc).__name__,
    )
    response = error_response(
        503,
        "service_unavailable",
        "The service cannot reach its database right now; try again in a few seconds.",
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path (Starlette's own 405 names only the
    first route that matched the path). Asked of the router itself, method by method, so routes
    of included routers count too."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    message = exc.detail if isinstance(exc.detail, str) else _phrase(exc.status_code)
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed here; use {', '.join(allowed) or 'nothing'}."
    elif exc.status_code == 400 and message == "There was an error parsing the body":
        # FastAPI's answer to a body it could not decode (e.g. not UTF-8).
        return JSONResponse(
            status_code=400,
            content=error_body("invalid_json", "The request body is not valid JSON."),
        )
    elif exc.status_code == 401:
        headers.update(WWW_AUTHENTICATE)
    # A structured detail (a dict, a list) moves to `details`; `message` stays a sentence.
    details = None if isinstance(exc.detail, str) else jsonable_encoder(exc.detail)
    body = error_body(code, message, details)
    return JSONResponse(status_code=exc.status_code, content=body, headers=headers or None)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    if any(d["type"] == "json_invalid" for d in details):
        where = next(d for d in details if d["type"] == "json_invalid")["loc"]
        position = f" (at character {where[1]})" if len(where) > 1 else ""
        return JSONResponse(
            status_code=400,
            content=error_body(
                "invalid_json", f"The request body is not valid JSON{position}.", details
            ),
        )
    if details and all(d["loc"] == ["query", "cursor"] for d in details):
        return JSONResponse(
            status_code=422,
            content=error_body(
                "invalid_cursor",
                "The cursor is not valid; use the next_cursor of a previous page.",
                details,
            ),
        )
    return JSONResponse(
        status_code=422,
        content=error_body("validation_error", _validation_message(details), details),
    )


async def _outage_error(request: Request, exc: Exception) -> JSONResponse:
    if is_outage(exc):
        return _unavailable(request, exc)
    return await _unhandled_error(request, exc)


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    if is_outage(exc):  # raised as a type the handlers above do not name
        return _unavailable(request, exc)
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
    """Make every failure of `app`, expected or not, answer with the envelope: ApiError and
    DomainError with what they carry, FastAPI's own errors, an outage as 503, anything else 500."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(DomainError, _domain_error)
    for kind in _OUTAGE_TYPES:
        app.add_exception_handler(kind, _outage_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unhandled_error)
