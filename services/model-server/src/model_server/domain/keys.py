"""Users' API keys: `ftdk_<id>_<secret>`, shown once. Only the secret's SHA-256 is stored: the
secret is 256 random bits, so a plain hash is as strong as any slow one and costs nothing per
request. The id finds the row; the comparison of hashes is constant-time."""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

PREFIX = "ftdk_"
_KEY = re.compile(r"^ftdk_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")
MAX_NAME_CHARS = 100


@dataclass(frozen=True)
class PresentedKey:
    """A key as a caller sent it, split; `secret` never leaves this process."""

    key_id: str
    secret: str = ""

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"PresentedKey(key_id={self.key_id!r})"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    plaintext: str
    secret_sha256: str

    def __repr__(self) -> str:
        return f"NewKey(key_id={self.key_id!r})"


@dataclass
class ApiKey:
    id: str
    user_id: str
    name: str
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def matches(self, presented: PresentedKey) -> bool:
        return self.active and hmac.compare_digest(
            self.secret_sha256, secret_hash(presented.secret)
        )


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_key(token: str) -> bool:
    """Whether a bearer credential is meant as an API key (not a JWT)."""
    return token.startswith(PREFIX)


def parse(token: str) -> PresentedKey | None:
    match = _KEY.fullmatch(token)
    if match is None:
        return None
    return PresentedKey(key_id=match["id"], secret=match["secret"])


def generate() -> NewKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)  # 43 characters
    return NewKey(
        key_id=key_id, plaintext=f"{PREFIX}{key_id}_{secret}", secret_sha256=secret_hash(secret)
    )
