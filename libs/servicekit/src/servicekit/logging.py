"""One log pipeline per process: structlog for our events, stdlib records routed through it.

Logs leave the process (to a terminal, a collector, a bug report), so redaction is a processor in
the pipeline rather than a habit at each call site: a field called `token` or a DSN with a password
cannot be logged in clear by accident.
"""

import functools
import logging
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

_SENSITIVE_KEY_PARTS = (
    "token",
    "secret",
    "password",
    "authorization",
    "api_key",
    "worker_key",
    "jwt",
    "cookie",
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+\S+")
# scheme://user:password@ — AMQP and database URLs are the ones that end up in error messages.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^:/@\s]*):([^@\s]*)@")
# ?access_token=... : EventSource clients cannot send headers, so tokens do travel in query strings
# and then show up in access-log lines.
_QUERY_SECRET = re.compile(r"(?i)([?&][^=&\s]*(?:token|secret|password|key|jwt)[^=&\s]*=)[^&\s#]+")
# Libraries that are chatty at INFO; their warnings still come through.
_NOISY_LOGGERS = (
    "aio_pika",
    "aiormq",
    "asyncio",
    "httpcore",
    "httpx",
    "sqlalchemy.engine",
    "uvicorn.access",
)
_MAX_DEPTH = 5


# Matches wherever one of the three patterns above could: most strings in a log line (ids,
# names, numbers as text) match none of them, and one search is cheaper than three substitutions.
_MAY_HOLD_SECRET = re.compile(
    r"(?i)\bbearer\s|://|[?&][^=&\s]*(?:token|secret|password|key|jwt)[^=&\s]*="
)


def _redact_text(text: str) -> str:
    if _MAY_HOLD_SECRET.search(text) is None:
        return text
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    text = _URL_CREDENTIALS.sub(rf"\1\2:{REDACTED}@", text)
    return _QUERY_SECRET.sub(rf"\1{REDACTED}", text)


@functools.lru_cache(maxsize=4096)
def _is_sensitive_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SENSITIVE_KEY_PARTS)


def _is_sensitive(key: object) -> bool:
    # Field names repeat (a few hundred in the code base): the answer is cached per name.
    return _is_sensitive_name(key if isinstance(key, str) else str(key))


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _redact_text(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            key: REDACTED if _is_sensitive(key) else _redact_value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_value(item, depth + 1) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(item, depth + 1) for item in value)
    return value


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: blank sensitive fields and mask credentials inside strings.

    Nested dicts and lists (headers, payloads) are walked a few levels deep. Keys starting with
    `_` are structlog's own plumbing (the stdlib record) and are left alone.
    """
    for key, value in event_dict.items():
        if key.startswith("_"):
            continue
        if _is_sensitive(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(value)
    return event_dict


def redact_url(url: str) -> str:
    """`url` without its password and query string, fit for a log line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    # Split the netloc by hand: urlsplit's .port rejects multi-host DSNs (h1:5432,h2:5432).
    netloc = f"{userinfo.partition(':')[0]}@{hostinfo}" if at else hostinfo
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _StderrLogger:
    """The end of structlog's pipeline: one rendered line to the current `sys.stderr` (looked up
    at each call, so a redirected stream is honoured), flushed. It carries the logger's name for
    the `logger` field. (structlog's WriteLogger binds its file when built and has no name.)"""

    __slots__ = ("name",)

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        stream = sys.stderr
        with _WRITE_LOCK:
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_WRITE_LOCK = threading.Lock()


def _logger_factory(*args: Any) -> _StderrLogger:
    return _StderrLogger(args[0] if args and isinstance(args[0], str) else None)


def configure_logging(*, json_logs: bool, level: str = "INFO") -> None:
    """Route structlog and stdlib logging to stderr through one redacting pipeline.

    Our own events (structlog) go straight from structlog's processors to stderr: the level is
    checked before any work (a filtering bound logger) and no stdlib record is built, which made a
    log line several times dearer. Records of other libraries (stdlib logging) are rendered by
    the same processors through a stdlib handler.

    Call it once, first thing in an entrypoint; calling it again replaces the previous setup.
    """
    # What every line gets, ours and other libraries' alike (stdlib's add_logger_name reads the
    # `name` of our stderr logger as it reads a stdlib record's).
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor
    if json_logs:
        renderer = structlog.processors.JSONRenderer()
    else:
        # Plain tracebacks: the pretty ones print local variables, secrets included, unredacted.
        # Colours only for a person at a terminal; piped output stays plain text.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    # Tracebacks become text before redaction, so credentials in exception messages are masked.
    final: list[Processor] = [structlog.processors.format_exc_info, redact_secrets, renderer]
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")

    structlog.configure(
        # The filtering bound logger formats positional arguments itself.
        processors=[*shared, *final],
        logger_factory=_logger_factory,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.PositionalArgumentsFormatter()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    # uvicorn installs its own handlers; drop them so its records go through ours exactly once.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
