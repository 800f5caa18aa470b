import pytest

from servicekit.settings import PLACEHOLDER_SECRETS, refuse_placeholder

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
