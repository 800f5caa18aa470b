"""Domain errors: each carries its machine-readable code and HTTP status (servicekit's
DomainError), which the app's one error mapping answers with."""

from uuid import UUID

from servicekit.domain import DomainError


class WebhookNotFound(DomainError):
    code = "webhook_not_found"
    status = 404

    def __init__(self, webhook_id: UUID) -> None:
        super().__init__(f"Webhook {webhook_id} was not found.")
        self.webhook_id = webhook_id


class InvalidWebhookUrl(DomainError):
    """The URL is not one a webhook may name: not a URL, not https, credentials in it..."""

    code = "webhook_url_invalid"
    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.details = {"field": "url"}


class WebhookUrlRefused(DomainError):
    """The URL names an internal place (a private, loopback or link-local address, a metadata
    service, a local-only name): the platform never calls it."""

    code = "webhook_url_refused"
    status = 422

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(
            f"The webhook URL is refused: its host is {reason}. Webhooks are only sent to public "
            "hosts; ask the operator to allow the host if it must be reached."
        )
        self.details = {"field": "url", "kind": kind}


class TooManyWebhooks(DomainError):
    code = "too_many_webhooks"
    status = 409

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You have {limit} webhooks, the most one user may have; delete one first."
        )
        self.details = {"limit": limit}


class UnreadableSecret(Exception):
    """No configured key decrypts a stored signing secret (the secrets key was changed without
    keeping the old one in its list)."""
