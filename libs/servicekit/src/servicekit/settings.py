"""Guards for service settings: a deployment must not start with a secret copied from an example.

Each service's `Settings` calls `refuse_placeholder` from a validator, so a forgotten `.env` fails
at startup with the setting's name instead of running with a guessable JWT secret or worker key.
"""

PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "dev",
        "development",
        "password",
        "test",
    }
)

_PLACEHOLDER_WORDS = ("changeme", "replaceme")

MIN_SECRET_LENGTH = 16


def refuse_placeholder(value: str, *, name: str, environment: str) -> None:
    """Raise ValueError if `value` is not a real secret, unless running in development.

    The message names the setting, never the value.
    """
    if environment == "development":
        return
    if not value:
        raise ValueError(f"{name} must be set outside development")
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"{name} must be at least {MIN_SECRET_LENGTH} characters outside development"
        )
    folded = value.strip().lower()
    # Also catch the long-winded kind: "changeme-in-production", "please_change_me_0123".
    squashed = folded.replace("-", "").replace("_", "")
    if folded in PLACEHOLDER_SECRETS or any(word in squashed for word in _PLACEHOLDER_WORDS):
        raise ValueError(f"{name} is a placeholder; set a real secret outside development")
