"""A webhook: a user's URL that is told of the events it subscribes to, and the rules its URL
must follow.

The URL must be https and its host public (netguard's classifier of internal hosts: address
literals in every spelling, metadata and local-only names). An operator's allow-list lifts the
host rules for named hosts; a development setting allows plain http to this machine's loopback
(tests run a receiver there). What a public-looking name resolves to is checked again whenever a
delivery connects (adapters.sender).
"""

import base64
import enum
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import ip_address
from urllib.parse import SplitResult, urlsplit
from uuid import UUID

from netguard import normalise_host, url_refusal
from webhook_service.domain.errors import InvalidWebhookUrl, WebhookUrlRefused

MAX_URL_LENGTH = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix Standard Webhooks gives secrets
# 32 random bytes: the key of HMAC-SHA256 (Standard Webhooks: between 24 and 64 bytes).
SECRET_BYTES = 32


class EventType(enum.StrEnum):
    """What a webhook may subscribe to."""

    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    MODEL_DEPLOYED = "model.deployed"


# Sent by POST /api/webhooks/{id}/test, whatever the webhook subscribes to.
PING = "ping"


def new_secret() -> str:
    """A signing secret as Standard Webhooks spells it: `whsec_` and the base64 of the key."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@dataclass(frozen=True)
class UrlPolicy:
    """`allowed_hosts`: an operator's exceptions to the host rules (hosts, or `.suffix` for every
    name below); `allow_http_loopback`: plain http (or https) to a loopback host, development
    and tests only (the settings refuse it in production)."""

    allowed_hosts: tuple[str, ...] = ()
    allow_http_loopback: bool = False


def is_loopback_host(host: str) -> bool:
    try:
        name = normalise_host(host)
    except ValueError:
        return False
    if name == "localhost":
        return True
    try:
        return ip_address(name).is_loopback
    except ValueError:
        return False


def _split(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"The webhook URL is longer than {MAX_URL_LENGTH} characters.")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidWebhookUrl("The webhook URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is no number
    except ValueError:
        raise InvalidWebhookUrl("The webhook URL is not a valid URL.") from None
    if not parts.hostname:
        raise InvalidWebhookUrl("The webhook URL must be absolute: https://host/path.")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl(
            "The webhook URL must not carry credentials (user:password@); every delivery is "
            "signed with the webhook's secret instead."
        )
    if parts.fragment:
        raise InvalidWebhookUrl("The webhook URL must not have a fragment (#...).")
    return parts


def check_url(url: str, policy: UrlPolicy) -> str:
    """The URL if a webhook may name it; else InvalidWebhookUrl or WebhookUrlRefused (both 422)."""
    parts = _split(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if policy.allow_http_loopback and scheme in ("http", "https") and is_loopback_host(host):
        return url
    if scheme != "https":
        raise InvalidWebhookUrl("The webhook URL must use https.")
    refused = url_refusal(url, allowed_hosts=policy.allowed_hosts)
    if refused is not None:
        raise WebhookUrlRefused(refused.reason, refused.kind)
    return url


def event_types_of(values: Iterable[str]) -> tuple[EventType, ...]:
    """Sorted and without repeats (the order a user listed them in means nothing)."""
    return tuple(sorted({EventType(v) for v in values}))


@dataclass
class Webhook:
    id: UUID
    user_id: str
    url: str
    event_types: tuple[EventType, ...]
    description: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    # The signing secret, encrypted (adapters.cipher); the plaintext is shown once.
    secret_ciphertext: str = field(repr=False)

    def subscribes_to(self, event_type: str) -> bool:
        return self.enabled and event_type in self.event_types
