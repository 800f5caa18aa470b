"""Worker credentials and the signatures that prove them on the broker.

An enrolled worker holds one token, `ftdw_<worker id, 32 hex>_<secret>`. Over HTTP it is a Bearer
token. On the broker it is never sent: a claim or a heartbeat carries an HMAC-SHA256 of its
fields, keyed by the sha256 of the token (what job-api stores), so a message in a queue, a
dead-letter queue or a log line gives nothing that could be replayed elsewhere or turned into
the token.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "ftdw_"  # noqa: S105 (a prefix, not a secret)
_TOKEN = re.compile(r"^ftdw_([0-9a-f]{32})_([A-Za-z0-9_-]{32,128})$")


@dataclass(frozen=True)
class WorkerToken:
    worker_id: str
    token: str

    def __repr__(self) -> str:
        return f"WorkerToken(worker_id={self.worker_id!r}, token=<hidden>)"

    @property
    def key(self) -> bytes:
        return token_key(self.token)


def new_token(worker_id: str) -> WorkerToken:
    return WorkerToken(worker_id, f"{TOKEN_PREFIX}{worker_id}_{secrets.token_urlsafe(32)}")


def parse_token(token: str) -> WorkerToken | None:
    """The worker a token names, or None when it is not a worker token at all."""
    match = _TOKEN.fullmatch(token.strip())
    if match is None:
        return None
    return WorkerToken(match.group(1), match.group(0))


def token_key(token: str) -> bytes:
    """The signing key of a token: its sha256. job-api stores this (hex), never the token."""
    return hashlib.sha256(token.encode()).digest()


def token_hash(token: str) -> str:
    return token_key(token).hex()


def sign(key: bytes, parts: tuple[str, ...]) -> str:
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def verify(key: bytes, parts: tuple[str, ...], signature: str) -> bool:
    return hmac.compare_digest(sign(key, parts), signature)
