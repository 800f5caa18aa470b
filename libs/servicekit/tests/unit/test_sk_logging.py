import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from servicekit.logging import configure_logging, redact_secrets, redact_url


def _redact(**event: Any) -> dict[str, Any]:
    return dict(redact_secrets(None, "info", dict(event)))


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "access_token",
        "JWT",
        "jwt_secret",
        "password",
        "db_password",
        "Authorization",
        "api_key",
        "worker_key",
        "set_cookie",
        "client_secret",
    ],
)
def test_sensitive_keys_are_redacted(key: str) -> None:
    assert _redact(event="x", **{key: "s3cr3t"})[key] == "[redacted]"


def test_other_keys_are_kept() -> None:
    event = {"event": "job.claimed", "job_id": "j-1", "attempt": 2, "worker": None}

    assert _redact(**event) == event


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOi.abc.def", "Authorization: Bearer [redacted]"),
        ("got bearer   abc123 back", "got bearer [redacted] back"),
        ("amqp://ftd:hunter2@rabbitmq:5672/", "amqp://ftd:[redacted]@rabbitmq:5672/"),
        ("failed amqps://u:p@host/vh now", "failed amqps://u:[redacted]@host/vh now"),
        ("postgresql://svc:pw@db:5432/ftd", "postgresql://svc:[redacted]@db:5432/ftd"),
        (
            'GET /jobs/j/stream?access_token=eyJ.x.y&limit=5 HTTP/1.1" 200',
            'GET /jobs/j/stream?access_token=[redacted]&limit=5 HTTP/1.1" 200',
        ),
        ("https://h/x?a=1&worker_key=k#f", "https://h/x?a=1&worker_key=[redacted]#f"),
        ("http://example.com/path?page=2", "http://example.com/path?page=2"),
        # No scheme, no "bearer ", no query: the pre-check lets these through untouched...
        ("job 3f1c claimed by w1", "job 3f1c claimed by w1"),
        # ...but not these, in any case or spacing.
        ("BEARER\tabc", "BEARER [redacted]"),
        ("see REDIS://app:pw@cache/0", "see REDIS://app:[redacted]@cache/0"),
        ("/x?X-Amz-Security-Token=abc", "/x?X-Amz-Security-Token=[redacted]"),
        ("/x?a=b&MyJWT=abc", "/x?a=b&MyJWT=[redacted]"),
    ],
)
def test_credentials_in_strings_are_masked(text: str, expected: str) -> None:
    assert _redact(event=text)["event"] == expected


def test_nested_values_are_redacted() -> None:
    redacted = _redact(
        event="http.request",
        headers={"Authorization": "Bearer abc", "accept": "json"},
        urls=["amqp://u:p@h/", ("Bearer x",)],
    )

    assert redacted["headers"] == {"Authorization": "[redacted]", "accept": "json"}
    assert redacted["urls"] == ["amqp://u:[redacted]@h/", ("Bearer [redacted]",)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://svc:hunter2@db:5432/ftd", "postgresql://svc@db:5432/ftd"),
        ("amqp://ftd:pw@rabbit/%2F?heartbeat=30", "amqp://ftd@rabbit/%2F"),
        ("https://hub.example/x?token=abc#frag", "https://hub.example/x"),
        ("postgresql://u:p@h1:5432,h2:5432/db", "postgresql://u@h1:5432,h2:5432/db"),
        ("postgresql://db/ftd", "postgresql://db/ftd"),
        ("http://[::1", "[redacted]"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers = root.handlers[:]
    touched = [logging.getLogger(name) for name in ("", "uvicorn.error", "aio_pika")]
    saved_levels = [logger.level for logger in touched]
    yield
    root.handlers[:] = saved_handlers
    for logger, level in zip(touched, saved_levels, strict=True):
        logger.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_json_pipeline_redacts_and_routes_stdlib(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_logs=True, level="info")
    # Keep module-level loggers elsewhere from caching this test's configuration.
    structlog.configure(cache_logger_on_first_use=False)

    structlog.get_logger("ftd.test").info("job.claimed", job_id="j-1", worker_key="k")
    # A stdlib logger of our own: a library imported by another test may hang a redaction filter
    # of its own on uvicorn's loggers (seen in the full run), which would hide what ours does.
    logging.getLogger("ftd.stdlib_test").info("dsn amqp://u:hunter2@rabbit/")
    logging.getLogger("aio_pika").info("chatty")
    logging.getLogger("aio_pika").warning("reconnecting")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["event"] for line in lines] == [
        "job.claimed",
        "dsn amqp://u:[redacted]@rabbit/",
        "reconnecting",
    ]
    first = lines[0]
    assert first["job_id"] == "j-1"
    assert first["worker_key"] == "[redacted]"
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert first["logger"] == "ftd.test"
    assert lines[2]["logger"] == "aio_pika"
    assert lines[2]["level"] == "warning"


@pytest.mark.usefixtures("restore_logging")
def test_level_filters_our_own_events(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_logs=True, level="WARNING")
    structlog.configure(cache_logger_on_first_use=False)

    structlog.get_logger("ftd.test").info("job.claimed")
    structlog.get_logger("ftd.test").warning("job.stalled")

    events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert events == ["job.stalled"]


@pytest.mark.usefixtures("restore_logging")
def test_console_pipeline_redacts(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_logs=False)
    structlog.configure(cache_logger_on_first_use=False)

    structlog.get_logger("ftd.test").info("auth.failed", header="Bearer abc.def", password="pw")

    err = capsys.readouterr().err
    assert "auth.failed" in err
    assert "abc.def" not in err
    assert "password=[redacted]" in err
    assert "=pw" not in err


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("json_logs", [True, False])
def test_tracebacks_are_redacted(json_logs: bool, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_logs=json_logs)
    structlog.configure(cache_logger_on_first_use=False)

    try:
        raise ConnectionError("cannot reach amqp://ftd:hunter2@rabbitmq/")
    except ConnectionError:
        structlog.get_logger("ftd.test").exception("broker.unreachable")

    err = capsys.readouterr().err
    assert "broker.unreachable" in err
    assert "ConnectionError" in err
    assert "hunter2" not in err
