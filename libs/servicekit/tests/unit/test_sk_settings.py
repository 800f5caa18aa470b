import secrets
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from servicekit.settings import (
    PLACEHOLDER_SECRETS,
    check_deployment,
    estimated_bits,
    refuse_default_database_password,
    refuse_guest_broker,
    refuse_placeholder,
    refuse_reused,
    role_credentials,
)

REAL = "q8V2-fT9xLr0mZc4pW7s"


@pytest.mark.parametrize(
    "value",
    ["", "short", *sorted(PLACEHOLDER_SECRETS), "changeme-in-production", "please_change_me_0123"],
)
def test_placeholders_are_refused_outside_development(value: str) -> None:
    with pytest.raises(ValueError, match="FTD_JWT_SECRET"):
        refuse_placeholder(value, name="FTD_JWT_SECRET", environment="production")


def test_the_message_does_not_repeat_the_value() -> None:
    with pytest.raises(ValueError, match="placeholder") as caught:
        refuse_placeholder("changeme-in-production", name="X", environment="staging")

    assert "changeme" not in str(caught.value)


def test_real_secret_is_accepted() -> None:
    refuse_placeholder(REAL, name="FTD_JWT_SECRET", environment="production")


@pytest.mark.parametrize("value", ["", "dev", "changeme"])
def test_development_accepts_anything(value: str) -> None:
    refuse_placeholder(value, name="FTD_JWT_SECRET", environment="development")


# --- weak secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "aaaaaaaaaaaaaaaa",
        "1234567890123456",
        "abababababababababababababababab",
        "passwordpassword",
        "0123456789abcdef",  # 16 distinct characters: 64 bits at most
        "x" * 64,
    ],
)
@pytest.mark.parametrize("environment", ["production", "test"])
def test_low_entropy_secrets_are_refused_outside_development(value: str, environment: str) -> None:
    with pytest.raises(ValueError, match="FTD_JWT_SECRET is too weak") as caught:
        refuse_placeholder(value, name="FTD_JWT_SECRET", environment=environment)

    assert value not in str(caught.value)


def test_every_generated_secret_passes() -> None:
    for _ in range(2000):
        refuse_placeholder(secrets.token_urlsafe(32), name="S", environment="production")
        refuse_placeholder(secrets.token_hex(16), name="S", environment="production")


def test_the_estimate_is_length_times_shannon_entropy() -> None:
    assert estimated_bits("") == 0
    assert estimated_bits("aaaa") == 0
    assert estimated_bits("abcd") == pytest.approx(8.0)
    assert estimated_bits("1234567890123456") == pytest.approx(52.0)
    assert estimated_bits(secrets.token_urlsafe(32)) > 150


# --- reuse -----------------------------------------------------------------------------------


def test_one_value_for_two_secrets_is_refused_naming_both() -> None:
    shared = secrets.token_urlsafe(32)
    named = {
        "FTD_JWT_SECRET": secrets.token_urlsafe(32),
        "FINETUNE_WORKER_KEY": SecretStr(shared),
        "FTD_DATA_TICKET_SECRET": shared,
        "FTD_SECRETS_KEY": None,
    }
    with pytest.raises(ValueError, match="hold the same value") as caught:
        refuse_reused(named, environment="test")

    message = str(caught.value)
    assert "FINETUNE_WORKER_KEY and FTD_DATA_TICKET_SECRET" in message
    assert shared not in message


def test_distinct_and_unset_secrets_are_accepted() -> None:
    refuse_reused(
        {"A": secrets.token_urlsafe(32), "B": secrets.token_urlsafe(32), "C": None, "D": None},
        environment="production",
    )


def test_development_may_reuse_a_secret() -> None:
    refuse_reused({"A": "same-value", "B": "same-value"}, environment="development")


# --- database passwords ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://job_api:job_api_dev@127.0.0.1:5432/finetune",
        "postgresql+asyncpg://data_service:data_service_dev@db:5432/finetune",
        "postgresql://registry_service:REGISTRY_SERVICE_DEV@db/finetune",
        "postgresql://someone:some%5Fthing_dev@db/finetune",
        "job_api_dev",
        SecretStr("registry_service_dev"),
    ],
)
@pytest.mark.parametrize("environment", ["production", "test"])
def test_development_database_passwords_are_refused(value: Any, environment: str) -> None:
    with pytest.raises(ValueError, match="JOB_API_DATABASE_URL uses a development") as caught:
        refuse_default_database_password(
            value, name="JOB_API_DATABASE_URL", environment=environment
        )

    assert "_dev@" not in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        f"postgresql://job_api:{secrets.token_urlsafe(24)}@db:5432/finetune",
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "postgresql://dev_user:s3cret-Pa55word-x@db/dev_db",
        secrets.token_urlsafe(24),
        None,
    ],
    # The ids name the case, not the random secret: every xdist process collects the same names.
    ids=["random-password-url", "no-password", "plain-password-url", "random-password", "none"],
)
def test_other_database_passwords_are_accepted(value: Any) -> None:
    refuse_default_database_password(value, name="X", environment="production")


def test_development_accepts_its_own_database_password() -> None:
    refuse_default_database_password(
        "postgresql://job_api:job_api_dev@127.0.0.1/finetune", name="X", environment="development"
    )


# --- broker users ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "amqp://guest:guest@rabbitmq:5672/",
        "amqps://guest:other-password@broker.example.org:5671/%2Ffinetune",
        "amqp://guest@rabbitmq:5672/",
        "amqp://rabbitmq:5672/",  # no user: the client logs in as guest
        "http://guest:guest@rabbitmq:15672",
    ],
)
@pytest.mark.parametrize("environment", ["production", "test"])
def test_guest_broker_user_is_refused(url: str, environment: str) -> None:
    with pytest.raises(ValueError, match="FTD_AMQP_URL logs in as RabbitMQ's default") as caught:
        refuse_guest_broker(SecretStr(url), name="FTD_AMQP_URL", environment=environment)

    assert "guest:" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:guest@localhost/", "amqp://[::1]:5672/"],
)
def test_production_refuses_guest_even_on_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="FTD_AMQP_URL"):
        refuse_guest_broker(url, name="FTD_AMQP_URL", environment="production")


@pytest.mark.parametrize(
    "url",
    ["amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:guest@localhost/", "amqp://[::1]:5672/"],
)
def test_tests_may_use_guest_on_a_loopback_broker(url: str) -> None:
    refuse_guest_broker(url, name="FTD_AMQP_URL", environment="test")


@pytest.mark.parametrize(
    "url",
    [
        "amqp://job-api:Zr0x-strong-pw@rabbitmq:5672/%2Ffinetune",
        "amqps://worker-7:pw@broker.example.org:5671/",
        "http://admin:pw@rabbitmq:15672",
        None,
    ],
)
def test_own_broker_users_are_accepted(url: str | None) -> None:
    refuse_guest_broker(url, name="FTD_AMQP_URL", environment="production")


# --- all together ----------------------------------------------------------------------------


def test_check_deployment_names_the_first_bad_setting() -> None:
    good = {"FTD_JWT_SECRET": secrets.token_urlsafe(32), "X": secrets.token_urlsafe(32)}
    check_deployment(
        environment="production",
        secrets=good,
        databases={"URL": f"postgresql://r:{secrets.token_urlsafe(16)}@db/f"},
        brokers={"FTD_AMQP_URL": f"amqp://svc:{secrets.token_urlsafe(16)}@mq/"},
    )
    with pytest.raises(ValueError, match="JOB_API_DB_PASSWORD"):
        check_deployment(
            environment="test", secrets=good, databases={"JOB_API_DB_PASSWORD": "job_api_dev"}
        )
    with pytest.raises(ValueError, match="FTD_AMQP_URL"):
        check_deployment(
            environment="production",
            secrets=good,
            brokers={"FTD_AMQP_URL": "amqp://guest:guest@mq/"},
        )
    with pytest.raises(ValueError, match="FTD_JWT_SECRET and X hold the same value"):
        check_deployment(
            environment="test",
            secrets={"FTD_JWT_SECRET": good["X"], "X": good["X"]},
        )
    check_deployment(
        environment="development",
        secrets={"FTD_JWT_SECRET": "dev", "X": "dev"},
        databases={"URL": "job_api_dev"},
        brokers={"FTD_AMQP_URL": "amqp://guest:guest@mq/"},
    )


class _Role(BaseModel):
    database_url: str = "postgresql://svc:svc_dev@127.0.0.1/finetune"
    db_password: SecretStr = SecretStr("svc_dev")


NAMES = {"SVC_DATABASE_URL": "database_url", "SVC_DB_PASSWORD": "db_password"}


def test_role_credentials_are_those_set_or_else_the_defaults() -> None:
    strong = f"postgresql://svc:{secrets.token_urlsafe(16)}@db/finetune"
    # `serve` sets the URL only, `db-init` the password only: the other default never runs.
    assert role_credentials(_Role(database_url=strong), NAMES) == {"SVC_DATABASE_URL": strong}
    password = SecretStr(secrets.token_urlsafe(16))
    assert role_credentials(_Role(db_password=password), NAMES) == {"SVC_DB_PASSWORD": password}
    # Nothing set: the development defaults are what would run, and are refused.
    defaults = role_credentials(_Role(), NAMES)
    assert set(defaults) == set(NAMES)
    with pytest.raises(ValueError, match="SVC_DATABASE_URL uses a development"):
        check_deployment(environment="production", secrets={}, databases=defaults)
    # Set explicitly to a development password: refused too.
    given = role_credentials(_Role(database_url=strong, db_password=SecretStr("svc_dev")), NAMES)
    with pytest.raises(ValueError, match="SVC_DB_PASSWORD uses a development"):
        check_deployment(environment="test", secrets={}, databases=given)
