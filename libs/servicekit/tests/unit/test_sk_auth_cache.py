"""Verified tokens are remembered until they expire, and never past their `exp` (plus leeway)."""

import time
from typing import Any

import pytest

from servicekit import auth
from servicekit.auth import JwtVerifier, mint_token
from servicekit.errors import ApiError

SECRET = "cache-test-secret-0123456789abcdef"


def test_a_verified_token_is_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = JwtVerifier(algorithm="HS256", secret=SECRET)
    token = mint_token(SECRET, "alice", roles=["admin"])
    first = verifier.verify(token)

    def no_decode(_token: str) -> dict[str, Any]:
        raise AssertionError("decoded twice")

    monkeypatch.setattr(verifier, "_decode", no_decode)
    assert verifier.verify(token) == first
    assert first.is_admin


def test_a_cached_token_expires_with_its_exp(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = JwtVerifier(algorithm="HS256", secret=SECRET, leeway_seconds=0)
    token = mint_token(SECRET, "alice", ttl_seconds=60)
    verifier.verify(token)
    now = time.time()
    monkeypatch.setattr(auth.time, "time", lambda: now + 61)
    # PyJWT reads the clock itself; the cache must not answer for an expired token either way.
    monkeypatch.setattr(
        verifier, "_decode", lambda _t: (_ for _ in ()).throw(auth.jwt.ExpiredSignatureError())
    )
    with pytest.raises(ApiError) as caught:
        verifier.verify(token)
    assert caught.value.code == "token_expired"


def test_failures_are_not_cached() -> None:
    verifier = JwtVerifier(algorithm="HS256", secret=SECRET)
    bad = mint_token("another-secret-0123456789abcdef0", "mallory")
    for _ in range(2):
        with pytest.raises(ApiError) as caught:
            verifier.verify(bad)
        assert caught.value.code == "invalid_token"
