"""Guards a mutation check found weak: the configured algorithm is the only one accepted (HS384
and HS512 signed with the right secret included), and a forged header never makes the verifier
fetch signing keys before it refuses the token."""

import time
from typing import Any

import jwt
import pytest

from servicekit.auth import JwtVerifier
from servicekit.errors import ApiError

SECRET = "an-hs256-secret-of-at-least-32-bytes!!-and-some-more-for-hs512-keys"


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "mallory", "iat": now, "exp": now + 600}


def _refused(verifier: JwtVerifier, token: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        verifier.verify(token)
    assert caught.value.status == 401
    return caught.value


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_hs256_mode_refuses_other_hmac_algorithms_signed_with_the_right_secret(
    algorithm: str,
) -> None:
    verifier = JwtVerifier(algorithm="HS256", secret=SECRET)
    token = jwt.encode(_claims(), SECRET, algorithm=algorithm)
    # The same claims as HS256 pass: only the algorithm differs.
    assert verifier.verify(jwt.encode(_claims(), SECRET, algorithm="HS256")).user_id == "mallory"
    error = _refused(verifier, token)
    assert error.code == "invalid_token"
    assert "algorithm" in error.message


def _no_fetch(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("the JWKS was fetched for a token that is refused anyway")


@pytest.mark.parametrize("signed_with", [SECRET, "not-the-secret-but-long-enough-0123456789"])
def test_hs256_mode_never_fetches_keys_for_a_token_with_a_kid(
    monkeypatch: pytest.MonkeyPatch, signed_with: str
) -> None:
    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", _no_fetch)
    monkeypatch.setattr(jwt.PyJWKClient, "get_signing_key_from_jwt", _no_fetch)
    verifier = JwtVerifier(algorithm="HS256", secret=SECRET)
    forged = jwt.encode(
        _claims(), signed_with, algorithm="HS512", headers={"kid": "attacker-key", "jku": "x"}
    )
    _refused(verifier, forged)


def test_rs256_mode_refuses_a_foreign_algorithm_before_fetching_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", _no_fetch)
    monkeypatch.setattr(jwt.PyJWKClient, "get_signing_key_from_jwt", _no_fetch)
    verifier = JwtVerifier(algorithm="RS256", jwks_url="https://idp.invalid/jwks.json")
    forged = jwt.encode(_claims(), SECRET, algorithm="HS256", headers={"kid": "attacker-key"})
    assert _refused(verifier, forged).code == "invalid_token"
