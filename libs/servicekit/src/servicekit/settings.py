"""Guards for service settings: a deployment must not start with a secret copied from an example.

Each service's `Settings` calls these from a validator, so a forgotten `.env` fails at start-up
with the setting's name (never its value) instead of running with a guessable JWT secret, worker
key or password. They apply everywhere but `development` (so `test` and `production`):

- `refuse_placeholder`: empty, shorter than `MIN_SECRET_LENGTH`, a known placeholder, or weak:
  `estimated_bits` (the value's length times the Shannon entropy of its characters' frequencies)
  below `MIN_SECRET_BITS`. Repeats and short runs (`aaaaaaaaaaaaaaaa`, `1234567890123456`) score
  0 to 60; a value of 16 characters can score 64 at most; `secrets.token_urlsafe(32)` scores about
  180 to 240, `secrets.token_hex(16)` 90 to 128. It is an estimate of how varied the characters
  are, not of randomness: it catches the lazy secret, not a well-chosen phrase.
- `refuse_reused`: one value for two secrets (a leak of one would open the other).
- `refuse_default_database_password`: a `*_dev` password (the development roles' passwords,
  `job_api_dev`...) in a database URL or a password setting. A service's URL and its role's
  password describe one credential, and each command needs one of them (`serve` the URL,
  `db-init` the password): `role_credentials` picks those set explicitly, or the defaults when
  none is (then the defaults are what would run).
- `refuse_guest_broker`: a broker URL logging in as RabbitMQ's default `guest` (named, or implied
  by an AMQP URL without a user). In `test` a broker on this host's loopback is the exception:
  RabbitMQ confines `guest` to loopback connections itself, and local test suites use it.

`check_deployment` runs them all for one service.
"""

import ipaddress
import math
from collections import Counter
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, SecretStr

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
# Below this estimate a secret is refused; see the module docstring for what scores what.
MIN_SECRET_BITS = 72
# The development roles' passwords end so (`job_api_dev`, `data_service_dev`...).
DEV_PASSWORD_SUFFIX = "_dev"  # noqa: S105 - what is refused, not a password
GUEST_USER = "guest"
_AMQP_SCHEMES = frozenset({"amqp", "amqps"})

Secret = str | SecretStr | None


def _plain(value: Secret) -> str | None:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def estimated_bits(value: str) -> float:
    """The value's length times the Shannon entropy (bits per character) of its characters."""
    if not value:
        return 0.0
    size = len(value)
    return -sum(n * math.log2(n / size) for n in Counter(value).values())


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
    if estimated_bits(value) < MIN_SECRET_BITS:
        raise ValueError(
            f"{name} is too weak (too short or too repetitive for a generated secret); outside "
            "development set a generated one, e.g. "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def refuse_reused(secrets: Mapping[str, Secret], *, environment: str) -> None:
    """Raise ValueError if two of the named secrets (those set) hold the same value."""
    if environment == "development":
        return
    seen: dict[str, str] = {}
    for name, secret in secrets.items():
        value = _plain(secret)
        if not value:
            continue
        if value in seen:
            raise ValueError(
                f"{seen[value]} and {name} hold the same value; outside development each needs "
                "its own secret"
            )
        seen[value] = name


def _password_of(value: str) -> str | None:
    """The password of a URL (`scheme://user:password@host/...`), else the value itself."""
    if "://" not in value:
        return value
    try:
        password = urlsplit(value).password
    except ValueError:
        return None
    return unquote(password) if password is not None else None


def refuse_default_database_password(value: Secret, *, name: str, environment: str) -> None:
    """Raise ValueError if a database URL or password setting holds a development password."""
    if environment == "development":
        return
    plain = _plain(value)
    password = _password_of(plain) if plain else None
    if password and password.lower().endswith(DEV_PASSWORD_SUFFIX):
        raise ValueError(
            f"{name} uses a development database password (ending in {DEV_PASSWORD_SUFFIX!r}); "
            "set the role's own password outside development"
        )


def role_credentials(settings: BaseModel, fields: Mapping[str, str]) -> dict[str, Secret]:
    """{setting name: value} of the role's credential settings (`fields`: setting name -> field)
    that were set explicitly (environment or arguments); all of them when none was."""
    given = {n: getattr(settings, f) for n, f in fields.items() if f in settings.model_fields_set}
    return given or {name: getattr(settings, field) for name, field in fields.items()}


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_guest_broker(value: Secret, *, name: str, environment: str) -> None:
    """Raise ValueError if a broker URL logs in as `guest` (AMQP without a user does too). A
    cluster's URLs (comma-separated) are judged each."""
    if environment == "development":
        return
    setting = _plain(value)
    if not setting:
        return
    for url in setting.split(","):
        _refuse_guest_url(url.strip(), name=name, environment=environment)


def _refuse_guest_url(url: str, *, name: str, environment: str) -> None:
    try:
        parts = urlsplit(url)
        user = unquote(parts.username) if parts.username is not None else None
        host = parts.hostname
    except ValueError:
        return  # not a URL this check can read; the client will refuse it
    if user is None and parts.scheme.lower() in _AMQP_SCHEMES:
        user = GUEST_USER  # what aiormq logs in as when the URL names no user
    if user != GUEST_USER:
        return
    if environment == "test" and _loopback(host):
        return
    raise ValueError(
        f"{name} logs in as RabbitMQ's default '{GUEST_USER}' user; outside development give "
        "the service its own broker user and password"
    )


def check_deployment(
    *,
    environment: str,
    secrets: Mapping[str, Secret],
    databases: Mapping[str, Secret] | None = None,
    brokers: Mapping[str, Secret] | None = None,
) -> None:
    """Every guard above for one service's settings: the secrets (each real, none shared), the
    database URLs and passwords, the broker URLs. Settings left unset (None) are skipped."""
    for name, secret in secrets.items():
        plain = _plain(secret)
        if plain is not None:
            refuse_placeholder(plain, name=name, environment=environment)
    refuse_reused(secrets, environment=environment)
    for name, database in (databases or {}).items():
        refuse_default_database_password(database, name=name, environment=environment)
    for name, broker in (brokers or {}).items():
        refuse_guest_broker(broker, name=name, environment=environment)
