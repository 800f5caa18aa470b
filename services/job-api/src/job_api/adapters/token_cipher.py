"""Linked Hub tokens at rest: servicekit's Fernet cipher in job-api's derivation contexts, keyed by
FTD_SECRETS_KEY (or, in development only, the JWT secret)."""

from functools import partial

from job_api.domain.namespaces import UnreadableToken
from servicekit import cipher
from servicekit.cipher import FernetCipher

SECRETS_INFO = cipher.secrets_info("job-api")
DEVELOPMENT_INFO = cipher.development_info("job-api")


def _unreadable() -> Exception:
    return UnreadableToken("no configured key decrypts this token")


derive_key = partial(cipher.derive_key, info=SECRETS_INFO)


def cipher_from(secrets_key: str | None, *, development_secret: str | None) -> FernetCipher:
    return cipher.cipher_from(
        secrets_key,
        development_secret=development_secret,
        service="job-api",
        setting="FTD_SECRETS_KEY",
        unreadable=_unreadable,
    )


__all__ = ["DEVELOPMENT_INFO", "SECRETS_INFO", "FernetCipher", "cipher_from", "derive_key"]
