"""FTD_AMQP_URL names one broker or a cluster's nodes (comma-separated), and every node's URL is
judged by the deployment checks."""

import pytest
from pydantic import SecretStr, ValidationError

from servicekit.config import PlatformSettings
from servicekit.settings import refuse_guest_broker

SECRET = "a-real-secret-value-of-enough-variety-1234567890"


def _settings(amqp_url: str, environment: str = "development") -> PlatformSettings:
    return PlatformSettings(
        amqp_url=SecretStr(amqp_url),
        jwt_secret=SecretStr(SECRET),
        environment=environment,
        database_url="postgresql://svc:pw-not-dev@db:5432/svc",
        db_password=SecretStr("pw-not-dev-either"),
    )


def test_one_url_still_works() -> None:
    settings = _settings("amqp://svc:pw@rabbit:5672/v")
    assert settings.amqp_url.get_secret_value() == "amqp://svc:pw@rabbit:5672/v"


def test_a_cluster_is_a_comma_separated_list() -> None:
    value = "amqp://svc:pw@r1:5672/v,amqp://svc:pw@r2:5672/v, amqp://svc:pw@r3:5672/v"
    assert _settings(value).amqp_url.get_secret_value() == value


def test_read_from_the_same_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTD_AMQP_URL", "amqp://svc:pw@r1/,amqp://svc:pw@r2/")
    monkeypatch.setenv("FTD_JWT_SECRET", SECRET)
    settings = PlatformSettings(
        database_url="postgresql://svc:pw-not-dev@db:5432/svc",
        db_password=SecretStr("pw-not-dev-either"),
    )
    assert settings.amqp_url.get_secret_value() == "amqp://svc:pw@r1/,amqp://svc:pw@r2/"


@pytest.mark.parametrize(
    "value",
    [
        "http://svc:pw@r1/",
        "amqp://svc:pw@r1/,http://svc:pw@r2/",
        "amqp://svc:pw@r1/,amqps://svc:pw@r2/",
        "amqp://svc:pw@r1/,",
        "amqp://svc:p,w-hidden@r1/",
    ],
)
def test_anything_but_a_list_of_amqp_urls_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(value)
    assert "pw" not in str(refused.value)
    assert "hidden" not in str(refused.value)


@pytest.mark.parametrize(
    "value",
    [
        "amqp://svc:pw@r1:5672/,amqp://guest:guest@r2:5672/",
        "amqp://guest:guest@r1:5672/,amqp://svc:pw@r2:5672/",
        "amqp://svc:pw@r1:5672/, amqp://r2:5672/",  # no user: the client logs in as guest
    ],
)
def test_a_guest_url_anywhere_in_the_list_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="FTD_AMQP_URL logs in as RabbitMQ's default"):
        refuse_guest_broker(value, name="FTD_AMQP_URL", environment="production")


def test_a_list_of_own_users_passes() -> None:
    refuse_guest_broker(
        "amqp://svc:pw@r1:5672/,amqp://svc:pw@r2:5672/",
        name="FTD_AMQP_URL",
        environment="production",
    )
