"""Typed errors: every non-2xx answer becomes an `FtdError` subclass chosen by its HTTP status,
carrying the API's machine-readable `code`, its human `message`, the `status` and any `details`.

Every Finetune Dispatcher service answers errors as `{"error": {"code", "message", "details"}}`;
a body in another shape (a proxy's HTML page) still gives a typed error, with a generic code.
"""

from typing import Any

import httpx


class FtdError(Exception):
    """Base of every error the SDK raises."""

    def __init__(
        self, message: str, *, code: str = "error", status: int | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        # Seconds the server asked the client to wait before trying again (Retry-After).
        self.retry_after: float | None = None

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "details": self.details,
        }


class ApiError(FtdError):
    """The API answered with an error status."""


class BadRequest(ApiError):
    """400: the request could not be read."""


class Unauthorized(ApiError):
    """401: no token, or the token is expired or not valid."""


class Forbidden(ApiError):
    """403: the token is valid but may not do this."""


class NotFound(ApiError):
    """404: no such job, dataset or model (or not yours)."""


class Conflict(ApiError):
    """409: the resource is not in a state that allows this (e.g. cancelling a finished job)."""


class PayloadTooLarge(ApiError):
    """413: the body (an upload) is over the server's limit."""


class UnsupportedMediaType(ApiError):
    """415: the body's content type is not accepted."""


class ValidationFailed(ApiError):
    """422: the request (or the uploaded file) is not valid; `details` says where."""


class RateLimited(ApiError):
    """429: too many requests or open streams."""


class ServerError(ApiError):
    """5xx: the platform failed; retrying later may work."""


class ServiceUnavailable(ServerError):
    """503: the service is starting, draining or overloaded (retried automatically)."""


class ConnectionFailed(FtdError):
    """The server could not be reached (after the retries)."""


class JobFailed(FtdError):
    """`Job.wait(raise_on_failure=True)` saw the job end failed or cancelled; `.job` is the job."""

    def __init__(self, job: Any) -> None:
        status = str(job.status)
        reason = job.error or f"the job ended {status}"
        super().__init__(
            f"Job {job.id} ended {status}: {reason}",
            code=f"job_{status}",
            details={"failure_class": job.failure_class},
        )
        self.job = job


class WaitTimeout(FtdError):
    """`Job.wait(timeout=...)` ran out of time before the job ended."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(status: int, body: Any) -> ApiError:
    """The typed error for an error status and its (already decoded) JSON body, if any."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        message = str(error.get("message") or error["code"])
        return cls(message, code=error["code"], status=status, details=error.get("details"))
    try:
        phrase = httpx.codes(status).get_reason_phrase(status)
    except ValueError:
        phrase = "HTTP error"
    return cls(
        f"The server answered {status} {phrase}.",
        code=phrase.lower().replace(" ", "_") or "http_error",
        status=status,
    )


def raise_for_response(response: httpx.Response) -> None:
    """Raise the typed error for an error response (its body must have been read)."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    error = error_for(response.status_code, body)
    retry_after = response.headers.get("Retry-After", "")
    if retry_after.isdecimal():
        error.retry_after = float(retry_after)
    raise error
