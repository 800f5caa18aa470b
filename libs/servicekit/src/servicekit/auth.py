"""Who is calling: bearer JWTs for people and tools, a shared key for GPU workers.

Verification is deliberately narrow. The accepted algorithm is fixed by configuration, never taken
from the token's header (the classic `alg` confusion: an RS256 public key reused as an HS256
secret, or `alg: none`). Every failure is a 401 with a stable code and a sentence that never
repeats the token, which would otherwise end up in client logs and bug reports.

A well-signed token is still data: its subject becomes the user id every query is scoped to, so it
must be a sane identifier (1 to `MAX_SUBJECT_CHARS` characters, no control characters or lone
surrogates, which PostgreSQL text refuses), and its time claims (`exp`, `nbf`, `iat`) must be JSON
numbers, as RFC 7519 says, not numeric strings or booleans that PyJWT would coerce.
"""

import hmac
import math
import threading
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jwt
import structlog
from cachetools import TLRUCache
from jwt.exceptions import InvalidSubjectError

from servicekit.errors import ApiError

log = structlog.get_logger(__name__)

# How long the JWKS document is trusted before it is fetched again; key rotation shows up within it.
_JWKS_LIFESPAN_SECONDS = 300
# The JWKS fetch is a blocking call made from a request; a slow identity provider must not hang it.
_JWKS_TIMEOUT_SECONDS = 5
_VERIFIED_CACHE_SIZE = 4096
# The longest subject accepted: identity providers' ids (UUIDs, `auth0|...`, e-mail addresses)
# are far shorter; a longer one would only bloat every index keyed by user id.
MAX_SUBJECT_CHARS = 255
# Unicode categories refused in a subject: control characters (NUL, C0, DEL, C1) and surrogates.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})
_TIME_CLAIMS = ("exp", "nbf", "iat")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller, as much as the services need to know about them."""

    user_id: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def _valid_until(_token: str, value: tuple[Principal, float], _now: float) -> float:
    return value[1]


def _invalid(message: str) -> ApiError:
    return ApiError(401, "invalid_token", message)


def _describe(exc: jwt.PyJWTError) -> str:
    """A sentence for the client: what was wrong, never the token itself."""
    # Order matters: several of these subclass DecodeError/InvalidTokenError.
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"The token is missing the required '{exc.claim}' claim."
    if isinstance(exc, jwt.InvalidSignatureError):
        return "The token signature is not valid."
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "The token is signed with an algorithm that is not accepted."
    if isinstance(exc, jwt.InvalidAudienceError):
        return "The token is not intended for this service."
    if isinstance(exc, jwt.InvalidIssuerError):
        return "The token was not issued by a trusted issuer."
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "The token is not valid yet."
    if isinstance(exc, InvalidSubjectError):
        return "The token subject is not valid."
    if isinstance(exc, jwt.PyJWKClientConnectionError):
        return "The signing keys could not be retrieved; try again later."
    if isinstance(exc, jwt.PyJWKClientError):
        return "The token was signed with an unknown key."
    if isinstance(exc, jwt.DecodeError):
        return "The token is malformed."
    return "The token is not valid."


class _BadClaimType(jwt.InvalidTokenError):
    def __init__(self, claim: str) -> None:
        super().__init__(f"{claim} is not a number")
        self.claim = claim


def _sane_subject(subject: str) -> bool:
    """Whether a (string) subject can serve as a user id: stored, indexed, logged."""
    if not subject or len(subject) > MAX_SUBJECT_CHARS or subject.isspace():
        return False
    if subject.isprintable():  # the common case: no control character, no surrogate
        return True
    return not any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in subject)


def _bad_time_claim(claims: Mapping[str, Any]) -> str | None:
    """The first of `exp`, `nbf`, `iat` present that is not a finite JSON number, if any."""
    for name in _TIME_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return name
        if not math.isfinite(value):
            return name
    return None


def _roles(claims: Mapping[str, Any]) -> frozenset[str]:
    # Identity providers disagree on the claim; accept both shapes and ignore anything else
    # rather than guessing what a number or an object was meant to grant.
    roles: set[str] = set()
    listed = claims.get("roles")
    if isinstance(listed, list):
        roles.update(role for role in listed if isinstance(role, str) and role)
    single = claims.get("role")
    if isinstance(single, str) and single:
        roles.add(single)
    return frozenset(roles)


class JwtVerifier:
    """Verify bearer tokens against one configured algorithm and key source.

    `verify` is synchronous: with RS256 it may fetch the JWKS over HTTP (cached for five minutes),
    so an async caller runs it in a thread pool; HS256 needs no I/O and may run on the loop.
    """

    def __init__(
        self,
        *,
        algorithm: Literal["HS256", "RS256"],
        secret: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway_seconds: int = 30,
    ) -> None:
        if algorithm == "HS256":
            if not secret:
                raise ValueError("HS256 token verification needs a secret")
            self._jwks: jwt.PyJWKClient | None = None
        elif algorithm == "RS256":
            if not jwks_url:
                raise ValueError("RS256 token verification needs a jwks_url")
            self._jwks = jwt.PyJWKClient(
                jwks_url,
                cache_keys=True,
                cache_jwk_set=True,
                lifespan=_JWKS_LIFESPAN_SECONDS,
                timeout=_JWKS_TIMEOUT_SECONDS,
            )
        else:
            raise ValueError(f"unsupported token algorithm {algorithm!r}")
        self._algorithm = algorithm
        self._secret = secret
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway_seconds
        # Clients send the same token on every request: remember verified ones until they expire
        # (a signature check is a tenth of a cheap request's CPU). Failures are never cached.
        # TLRU: each entry lives until its token's own expiry; least recently used go first.
        self._verified: TLRUCache[str, tuple[Principal, float]] = TLRUCache(
            maxsize=_VERIFIED_CACHE_SIZE, ttu=_valid_until, timer=lambda: time.time()
        )
        self._lock = threading.Lock()

    def verify(self, token: str) -> Principal:
        """Return the caller of a valid token; raise a 401 `ApiError` otherwise."""
        with self._lock:
            hit = self._verified.get(token)
        if hit is not None:
            return hit[0]
        principal, valid_until = self._verify_uncached(token)
        with self._lock:
            self._verified[token] = (principal, valid_until)
        return principal

    def _verify_uncached(self, token: str) -> tuple[Principal, float]:
        try:
            claims = self._decode(token)
        except jwt.ExpiredSignatureError:
            raise ApiError(401, "token_expired", "The token has expired; sign in again.") from None
        except jwt.PyJWKClientConnectionError as exc:
            # Not the caller's fault, but we cannot tell a good token from a bad one without keys.
            log.warning("auth.jwks_unavailable", error=type(exc).__name__)
            raise _invalid(_describe(exc)) from None
        except _BadClaimType as exc:
            raise _invalid(
                f"The token's '{exc.claim}' claim must be a number of seconds."
            ) from None
        except jwt.PyJWTError as exc:
            raise _invalid(_describe(exc)) from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not _sane_subject(subject):
            raise _invalid(
                "The token subject is not valid: it must be 1 to "
                f"{MAX_SUBJECT_CHARS} characters without control characters."
            )
        # jwt.decode accepted `exp` (a number) with this leeway; the cache honours the same bound.
        return Principal(user_id=subject, roles=_roles(claims)), float(claims["exp"]) + self._leeway

    def _decode(self, token: str) -> dict[str, Any]:
        # Refuse a foreign algorithm before any key lookup, so a forged header cannot make us
        # fetch the JWKS; jwt.decode below enforces the same fixed list again.
        header = jwt.get_unverified_header(token)
        if header.get("alg") != self._algorithm:
            raise jwt.InvalidAlgorithmError("unexpected algorithm")
        # PyJWT coerces time claims with int(): "9999999999" would pass as a number and `true` as
        # 1 (expired). Their type is checked first, so such a token is refused as invalid
        # whatever its signature or times (a parse of the payload; no key is involved).
        bad_claim = _bad_time_claim(jwt.decode(token, options={"verify_signature": False}))
        if bad_claim is not None:
            raise _BadClaimType(bad_claim)
        key: Any
        if self._jwks is not None:
            key = self._jwks.get_signing_key_from_jwt(token).key
        else:
            key = self._secret
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[self._algorithm],
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway,
            options={"require": ["exp", "sub"]},
        )
        return claims


def mint_token(
    secret: str,
    sub: str,
    *,
    roles: Sequence[str] = (),
    ttl_seconds: int = 3600,
    audience: str | None = None,
    issuer: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Sign an HS256 token, for development sign-in and tests.

    `extra` is applied last, so it can add claims or deliberately override the standard ones.
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "iat": now,
        "exp": now + ttl_seconds,
        "roles": list(roles),
    }
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer <token>` header value, or None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def check_worker_key(presented: str | None, expected: str) -> None:
    """Raise unless `presented` is the workers' shared key; constant time, so it can't be probed."""
    if not presented:
        raise ApiError(401, "missing_worker_key", "A worker key is required.")
    if not expected or not hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8")):
        raise ApiError(403, "invalid_worker_key", "The worker key is not valid.")
