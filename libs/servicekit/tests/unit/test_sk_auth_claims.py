"""A well-signed token is still data: its subject must be a sane user id (no NUL or other control
character, not empty, not absurdly long) and its time claims JSON numbers, never coerced strings
or booleans. Each refusal is a 401 `invalid_token`, never an error further in."""

import time
from typing import Any

import jwt
import pytest

from servicekit.auth import MAX_SUBJECT_CHARS, JwtVerifier
from servicekit.errors import ApiError

SECRET = "an-hs256-secret-of-at-least-32-bytes!!"


def _token(**overrides: Any) -> str:
    now = int(time.time())
    claims = {"sub": "user-1", "iat": now, "exp": now + 600, **overrides}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def _refused(token: str) -> ApiError:
    verifier = JwtVerifier(algorithm="HS256", secret=SECRET)
    with pytest.raises(ApiError) as caught:
        verifier.verify(token)
    assert caught.value.status == 401
    assert caught.value.code == "invalid_token"
    return caught.value


@pytest.mark.parametrize(
    "subject",
    [
        "alice\x00",
        "\x00",
        "a\x00b",
        "line\nbreak",
        "tab\there",
        "bell\x07",
        "del\x7f",
        "c1\x85",
        "lone\ud800surrogate",
        "",
        "   ",
        "x" * (MAX_SUBJECT_CHARS + 1),
    ],
)
def test_a_subject_that_is_not_a_sane_identifier_is_refused(subject: str) -> None:
    error = _refused(_token(sub=subject))

    assert "subject" in error.message
    assert str(MAX_SUBJECT_CHARS) in error.message


@pytest.mark.parametrize(
    "subject",
    ["alice", "auth0|5f7c8ec7c33c6c004bbafe82", "alice@example.org", "Ælfrīc Ōno", "x" * 255],
)
def test_ordinary_subjects_are_accepted(subject: str) -> None:
    verifier = JwtVerifier(algorithm="HS256", secret=SECRET)

    assert verifier.verify(_token(sub=subject)).user_id == subject


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["9999999999", "1", True, None, [1], {"s": 1}])
def test_time_claims_must_be_json_numbers(claim: str, value: Any) -> None:
    now = int(time.time())
    good = {"exp": now + 600, "nbf": now - 10, "iat": now}

    _refused(_token(**{**good, claim: value}))


def test_exp_as_a_numeric_string_far_in_the_future_is_refused() -> None:
    error = _refused(_token(exp="9999999999"))

    assert error.message == "The token's 'exp' claim must be a number of seconds."


def test_numeric_time_claims_are_accepted_as_integers_or_fractions() -> None:
    now = time.time()
    verifier = JwtVerifier(algorithm="HS256", secret=SECRET)

    principal = verifier.verify(_token(exp=now + 600.5, nbf=now - 1.25, iat=int(now)))

    assert principal.user_id == "user-1"
