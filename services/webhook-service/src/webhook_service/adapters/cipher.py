"""Webhook signing secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).

The service needs the secret itself to sign, so it keeps it encrypted, never hashed. The Fernet
keys are derived with HKDF-SHA256 from WEBHOOK_SERVICE_SECRETS_KEY (any strong secret); several,
comma-separated, rotate keys: the first encrypts, every one decrypts. In development only, without
one, the key is derived from the JWT secret (in a context of its own).
"""

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from webhook_service.domain.errors import UnreadableSecret

SECRETS_INFO = b"finetune-dispatcher webhook-service secrets at rest v1"
DEVELOPMENT_INFO = b"finetune-dispatcher webhook-service development secrets key v1"


def derive_key(secret: str, *, info: bytes = SECRETS_INFO) -> bytes:
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
            raise UnreadableSecret("no configured key decrypts this webhook secret") from None

    def __repr__(self) -> str:
        return "FernetCipher(<keys hidden>)"


def cipher_from(secrets_key: str | None, *, development_secret: str | None) -> FernetCipher:
    if secrets_key:
        keys = [s.strip() for s in secrets_key.split(",") if s.strip()]
        if keys:
            return FernetCipher([derive_key(k) for k in keys])
    if not development_secret:
        raise ValueError(
            "WEBHOOK_SERVICE_SECRETS_KEY is not set and there is no JWT secret to derive from."
        )
    return FernetCipher([derive_key(development_secret, info=DEVELOPMENT_INFO)])
