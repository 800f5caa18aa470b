"""Webhook signing secrets at rest: the service needs the secret itself to sign, so it keeps it
encrypted, never hashed: servicekit's Fernet cipher in webhook-service's derivation contexts, keyed
by WEBHOOK_SERVICE_SECRETS_KEY (or, in development only, the JWT secret)."""

from servicekit import cipher
from servicekit.cipher import FernetCipher
from webhook_service.domain.errors import UnreadableSecret


def _unreadable() -> Exception:
    return UnreadableSecret("no configured key decrypts this webhook secret")


def cipher_from(secrets_key: str | None, *, development_secret: str | None) -> FernetCipher:
    return cipher.cipher_from(
        secrets_key,
        development_secret=development_secret,
        service="webhook-service",
        setting="WEBHOOK_SERVICE_SECRETS_KEY",
        unreadable=_unreadable,
    )
