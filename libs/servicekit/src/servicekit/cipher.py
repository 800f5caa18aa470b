"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).

For secrets a service must read back (a linked Hub token, a webhook's signing secret), so it keeps
them encrypted rather than hashed. The Fernet keys are derived with HKDF-SHA256 from the configured
secret(s), so the setting may be any strong secret (as the platform's other secrets are). Several,
comma-separated, rotate keys: the first encrypts, every one decrypts. Each service derives in
contexts of its own: a key derived here is never another service's, nor the JWT secret's signing key
in development, where the JWT secret is the source.
"""

import base64
from collections.abc import Callable, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def secrets_info(service: str) -> bytes:
    """The derivation context of `service`'s configured secrets key."""
    return f"finetune-dispatcher {service} secrets at rest v1".encode()


def development_info(service: str) -> bytes:
    """The derivation context of `service`'s development key (from the JWT secret)."""
    return f"finetune-dispatcher {service} development secrets key v1".encode()


def derive_key(secret: str, *, info: bytes) -> bytes:
    """A Fernet key (urlsafe base64 of 32 bytes) derived from `secret` in the context `info`."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


class FernetCipher:
    def __init__(
        self, keys: Sequence[bytes], *, unreadable: Callable[[], Exception] = ValueError
    ) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self._unreadable = unreadable

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise self._unreadable() from None

    def __repr__(self) -> str:
        return "FernetCipher(<keys hidden>)"


def cipher_from(
    secrets_key: str | None,
    *,
    development_secret: str | None,
    service: str,
    setting: str,
    unreadable: Callable[[], Exception] = ValueError,
) -> FernetCipher:
    """From the `setting` (comma-separated for rotation); without it (development only: the
    settings refuse that elsewhere) from the JWT secret, in `service`'s development context."""
    if secrets_key:
        keys = [s.strip() for s in secrets_key.split(",") if s.strip()]
        if keys:
            return FernetCipher(
                [derive_key(k, info=secrets_info(service)) for k in keys], unreadable=unreadable
            )
    if not development_secret:
        raise ValueError(f"{setting} is not set and there is no JWT secret to derive from.")
    return FernetCipher(
        [derive_key(development_secret, info=development_info(service))], unreadable=unreadable
    )
