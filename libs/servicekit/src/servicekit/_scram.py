"""SCRAM-SHA-256 password verifiers, computed client-side as `psql`'s `\\password` does.

`CREATE ROLE ... PASSWORD '<plain text>'` puts the password into the statement text, where
`log_statement = ddl`, pg_stat_activity and error reports can show it. Sending PostgreSQL the
verifier instead (the exact string it would have stored itself) keeps the plain text in this
process only.
"""

import base64
import hashlib
import hmac
import secrets

_ITERATIONS = 4096  # PostgreSQL's default scram_iterations
_SALT_BYTES = 16


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def scram_sha256_verifier(password: str, *, salt: bytes | None = None) -> str:
    """The `rolpassword` value PostgreSQL stores for `password` (RFC 5802 / RFC 7677 keys).

    Only for ASCII passwords: PostgreSQL SASLprep-normalises other text before hashing, and an
    ASCII string is the one case where that normalisation is the identity.
    """
    if not password.isascii():
        raise ValueError("client-side SCRAM verifiers are only computed for ASCII passwords")
    return verifier_for_bytes(password.encode("ascii"), salt=salt)


def verifier_for_bytes(password: bytes, *, salt: bytes | None = None) -> str:
    """The verifier for `password` exactly as given, i.e. already SASLprep-normalised."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, _ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${_ITERATIONS}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"
