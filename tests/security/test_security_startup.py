"""A deployment does not start with weak settings (the review's secret-hygiene findings): each
service's real `serve` command, in a subprocess, with a production environment in which one
thing is wrong, exits with status 2 and one line naming the setting and the rule; no traceback,
and never the value. The review started production services with `aaaaaaaaaaaaaaaa` as the JWT
secret, one value for two secrets, the development database passwords (`*_dev`) and the broker's
`guest` user, and found that FTD_ENV=test skipped the data-ticket secret check.

The control: the same environment without the fault gets past the settings and on to connecting
(to closed ports here, so it stops there, for that reason only).
"""

import os
import secrets
import subprocess
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from ftd_stack import BIN, free_port

# No stack, no database or broker: each case is a service process that stops at its settings.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DB_URL = {
    "job-api": "JOB_API_DATABASE_URL",
    "data-service": "DATA_SERVICE_DATABASE_URL",
    "registry-service": "REGISTRY_SERVICE_DATABASE_URL",
}
ROLE = {
    "job-api": "job_api",
    "data-service": "data_service",
    "registry-service": "registry_service",
}
WEAK = "aaaaaaaaaaaaaaaa"


def _strong() -> str:
    return secrets.token_urlsafe(32)


def _good(service: str) -> dict[str, str]:
    """A production environment that passes every check; its servers are closed ports."""
    closed = free_port()
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108 - only when HOME is unset
        "PYTHONUNBUFFERED": "1",
        "FTD_ENV": "production",
        "FTD_JWT_SECRET": _strong(),
        "FINETUNE_WORKER_KEY": _strong(),
        "FTD_DATA_TICKET_SECRET": _strong(),
        "FTD_SECRETS_KEY": _strong(),
        DB_URL[service]: (
            f"postgresql://{ROLE[service]}:{secrets.token_hex(16)}@127.0.0.1:{closed}/finetune"
        ),
        "FTD_ADMIN_DSN": f"postgresql://postgres:{secrets.token_hex(16)}@127.0.0.1:{closed}/postgres",
        "FTD_AMQP_URL": f"amqp://{ROLE[service]}:{secrets.token_hex(16)}@127.0.0.1:{closed}/",
    }


def _serve(service: str, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [str(BIN / service), "serve", "--host", "127.0.0.1", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    # The console wraps its lines: compared as one line (and secrets with no space at all).
    return done.returncode, " ".join((done.stdout + done.stderr).split())


def _same_secret(*names: str) -> dict[str, str]:
    shared = _strong()
    return {name: shared for name in names}


# (service, what to change in the good environment (None: unset it), the setting the message
# names, the rule's words). No changed secret or password may be printed.
Case = tuple[str, Callable[[], dict[str, str | None]], str, str]
CASES: dict[str, Case] = {
    "job-api weak JWT secret": (
        "job-api",
        lambda: {"FTD_JWT_SECRET": WEAK},
        "FTD_JWT_SECRET",
        "too weak",
    ),
    "job-api weak worker key": (
        "job-api",
        lambda: {"FINETUNE_WORKER_KEY": "1234567890123456"},
        "FINETUNE_WORKER_KEY",
        "too weak",
    ),
    "job-api one value for two secrets": (
        "job-api",
        lambda: _same_secret("FTD_JWT_SECRET", "FINETUNE_WORKER_KEY"),
        "FTD_JWT_SECRET and FINETUNE_WORKER_KEY",
        "same value",
    ),
    "job-api ticket secret reused as secrets key": (
        "job-api",
        lambda: _same_secret("FTD_DATA_TICKET_SECRET", "FTD_SECRETS_KEY"),
        "FTD_DATA_TICKET_SECRET and FTD_SECRETS_KEY",
        "same value",
    ),
    "job-api development database password": (
        "job-api",
        lambda: {
            "JOB_API_DATABASE_URL": "postgresql://job_api:job_api_dev@127.0.0.1:5432/finetune"
        },
        "JOB_API_DATABASE_URL",
        "development database password",
    ),
    "job-api guest broker": (
        "job-api",
        lambda: {"FTD_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/"},
        "FTD_AMQP_URL",
        "'guest'",
    ),
    "job-api guest management API": (
        "job-api",
        lambda: {"FTD_BROKER_MANAGEMENT_URL": "http://guest:guest@rabbit.example.com:15672"},
        "FTD_BROKER_MANAGEMENT_URL",
        "'guest'",
    ),
    "data-service weak ticket secret": (
        "data-service",
        lambda: {"FTD_DATA_TICKET_SECRET": WEAK},
        "FTD_DATA_TICKET_SECRET",
        "too weak",
    ),
    "data-service one value for two secrets": (
        "data-service",
        lambda: _same_secret("FTD_JWT_SECRET", "FTD_DATA_TICKET_SECRET"),
        "FTD_JWT_SECRET and FTD_DATA_TICKET_SECRET",
        "same value",
    ),
    "data-service development database password": (
        "data-service",
        lambda: {"DATA_SERVICE_DB_PASSWORD": "data_service_dev"},
        "DATA_SERVICE_DB_PASSWORD",
        "development database password",
    ),
    "data-service broker without a user": (
        "data-service",
        lambda: {"FTD_AMQP_URL": "amqps://rabbit.example.com:5671/"},
        "FTD_AMQP_URL",
        "'guest'",
    ),
    "registry-service weak JWT secret": (
        "registry-service",
        lambda: {"FTD_JWT_SECRET": "abababababababababababab"},
        "FTD_JWT_SECRET",
        "too weak",
    ),
    "registry-service development admin password": (
        "registry-service",
        lambda: {"FTD_ADMIN_DSN": "postgresql://postgres:registry_service_dev@db:5432/postgres"},
        "FTD_ADMIN_DSN",
        "development database password",
    ),
    "registry-service guest broker": (
        "registry-service",
        lambda: {"FTD_AMQP_URL": "amqp://guest:guest@rabbit.example.com:5672/"},
        "FTD_AMQP_URL",
        "'guest'",
    ),
    # FTD_ENV=test is not development: the data-ticket secret is checked there too.
    "job-api test env without a ticket secret": (
        "job-api",
        lambda: {"FTD_ENV": "test", "FTD_DATA_TICKET_SECRET": None},
        "FTD_DATA_TICKET_SECRET",
        "must be set outside development",
    ),
    "job-api test env weak ticket secret": (
        "job-api",
        lambda: {"FTD_ENV": "test", "FTD_DATA_TICKET_SECRET": WEAK},
        "FTD_DATA_TICKET_SECRET",
        "too weak",
    ),
    "data-service test env without a ticket secret": (
        "data-service",
        lambda: {"FTD_ENV": "test", "FTD_DATA_TICKET_SECRET": None},
        "FTD_DATA_TICKET_SECRET",
        "must be set outside development",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_weak_production_setting_stops_the_service_at_start_up(case: str) -> None:
    service, change, setting, rule = CASES[case]
    env = _good(service)
    changed = change()
    for name, value in changed.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value

    status, output = _serve(service, env)

    assert status == 2, output
    assert "configuration error:" in output, output
    assert setting in output, output
    assert rule in output, output
    assert "Traceback" not in output, output
    for value in changed.values():
        if value in (None, "test", "production"):
            continue
        # A secret, or the password a URL carries; RabbitMQ's `guest` is named by the rule.
        hidden = urlsplit(value).password if "://" in value else value
        if hidden and hidden != "guest":
            assert hidden not in output.replace(" ", ""), output


@pytest.mark.parametrize("service", list(DB_URL))
def test_the_same_environment_without_the_fault_gets_past_the_settings(service: str) -> None:
    env = _good(service)

    status, output = _serve(service, env)

    assert status != 2, output
    assert "configuration error" not in output, output
    assert "Connection refused" in output, "it went on to connect"
    for name in (
        "FTD_JWT_SECRET",
        "FINETUNE_WORKER_KEY",
        "FTD_DATA_TICKET_SECRET",
        DB_URL[service],
    ):
        assert env[name] not in output.replace(" ", ""), name
