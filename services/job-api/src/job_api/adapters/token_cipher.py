"""Secrets at rest (linked Hub tokens): Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).

The Fernet keys are derived with HKDF-SHA256 from the configured secret(s), so FTD_SECRETS_KEY
may be any strong secret (as the platform's other secrets are). Several, comma-separated, rotate
keys: the first encrypts, every one decrypts.
"""

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from job_api.domain.namespaces import UnreadableToken

# Distinct derivation contexts: a key derived here is never the JWT secret's signing key, even in
# development where the JWT secret is the source.
SECRETS_INFO = b"finetune-dispatcher job-api secrets at rest v1"
DEVELOPMENT_INFO = b"finetune-dispatcher job-api development secrets key v1"


def derive_key(secret: str, *, info: bytes = SECRETS_INFO) -> bytes:
    """A Fernet key (urlsafe base64 of 32 bytes) derived from `secret`."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


class FernetCipher:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise UnreadableToken("no configured key decrypts this token") from None

    def __repr__(self) -> str:
        return "FernetCipher(<keys hidden>)"


def cipher_from(secrets_key: str | None, *, development_secret: str | None) -> FernetCipher:
    """From FTD_SECRETS_KEY (comma-separated for rotation); without it (development only: the
    settings refuse that elsewhere) from the JWT secret."""
    if secrets_key:
        secrets = [s.strip() for s in secrets_key.split(",") if s.strip()]
        if secrets:
            return FernetCipher([derive_key(s) for s in secrets])
    if not development_secret:
        raise ValueError("FTD_SECRETS_KEY is not set and there is no JWT secret to derive from.")
    return FernetCipher([derive_key(development_secret, info=DEVELOPMENT_INFO)])
