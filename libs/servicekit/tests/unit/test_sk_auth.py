import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from servicekit.auth import (
    JwtVerifier,
    Principal,
    bearer_token,
    check_worker_key,
    mint_token,
)
from servicekit.errors import ApiError

SECRET = "an-hs256-secret-of-at-least-32-bytes!!"
OTHER_SECRET = "another-hs256-secret-of-32-bytes-or-more"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _forge(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token built by hand, for the shapes PyJWT refuses to produce."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if hmac_key is None:
        return f"{signing_input}."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "user-1", "iat": now, "exp": now + 600, **overrides}


def _verifier(**kwargs: Any) -> JwtVerifier:
    return JwtVerifier(algorithm="HS256", secret=SECRET, **kwargs)


def _refusal(verifier: JwtVerifier, token: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        verifier.verify(token)
    assert caught.value.status == 401
    assert not token or token not in caught.value.message
    return caught.value


def test_valid_hs256_token_gives_the_principal() -> None:
    token = mint_token(SECRET, "user-1", roles=["admin", "member"])

    principal = _verifier().verify(token)

    assert principal == Principal(user_id="user-1", roles=frozenset({"admin", "member"}))
    assert principal.is_admin


def test_expired_token_is_token_expired() -> None:
    token = mint_token(SECRET, "user-1", ttl_seconds=-120)

    error = _refusal(_verifier(), token)

    assert error.code == "token_expired"


def test_leeway_accepts_a_token_that_just_expired() -> None:
    token = mint_token(SECRET, "user-1", ttl_seconds=-5)

    assert _verifier(leeway_seconds=30).verify(token).user_id == "user-1"


@pytest.mark.parametrize("claim", ["sub", "exp"])
def test_missing_required_claim_is_refused(claim: str) -> None:
    claims = _claims()
    del claims[claim]
    token = jwt.encode(claims, SECRET, algorithm="HS256")

    error = _refusal(_verifier(), token)

    assert error.code == "invalid_token"
    assert f"'{claim}'" in error.message


def test_empty_subject_is_refused() -> None:
    token = jwt.encode(_claims(sub=""), SECRET, algorithm="HS256")

    assert _refusal(_verifier(), token).code == "invalid_token"


def test_wrong_secret_is_refused() -> None:
    token = mint_token(OTHER_SECRET, "user-1")

    error = _refusal(_verifier(), token)

    assert error.code == "invalid_token"
    assert error.message == "The token signature is not valid."


def test_alg_none_token_is_refused() -> None:
    token = _forge({"alg": "none", "typ": "JWT"}, _claims(), hmac_key=None)

    error = _refusal(_verifier(), token)

    assert error.code == "invalid_token"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "Bearer x.y.z", "é.é.é"])
def test_malformed_token_is_refused(token: str) -> None:
    error = _refusal(_verifier(), token)

    assert error.code == "invalid_token"


def test_audience_and_issuer_are_checked_when_configured() -> None:
    verifier = _verifier(audience="ftd", issuer="https://id.example")

    good = mint_token(SECRET, "u", audience="ftd", issuer="https://id.example")
    wrong_aud = mint_token(SECRET, "u", audience="other", issuer="https://id.example")
    wrong_iss = mint_token(SECRET, "u", audience="ftd", issuer="https://evil.example")
    no_aud = mint_token(SECRET, "u", issuer="https://id.example")

    assert verifier.verify(good).user_id == "u"
    for token in (wrong_aud, wrong_iss, no_aud):
        assert _refusal(verifier, token).code == "invalid_token"


@pytest.mark.parametrize(
    ("extra", "roles"),
    [
        ({"roles": ["admin", "member"]}, {"admin", "member"}),
        ({"role": "admin"}, {"admin"}),
        ({"roles": ["member"], "role": "admin"}, {"admin", "member"}),
        ({"roles": "admin"}, set()),
        ({"roles": {"admin": True}}, set()),
        ({"roles": ["member", 7, None]}, {"member"}),
        ({"role": ["admin"]}, set()),
        ({"role": 1}, set()),
        ({}, set()),
    ],
)
def test_roles_come_from_roles_or_role(extra: dict[str, Any], roles: set[str]) -> None:
    claims = _claims()
    claims.update(extra)
    token = jwt.encode(claims, SECRET, algorithm="HS256")

    principal = _verifier().verify(token)

    assert principal.roles == frozenset(roles)
    assert principal.is_admin == ("admin" in roles)


def test_verifier_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="secret"):
        JwtVerifier(algorithm="HS256")
    with pytest.raises(ValueError, match="jwks_url"):
        JwtVerifier(algorithm="RS256", secret=SECRET)


class TestRs256:
    @pytest.fixture
    def private_key(self) -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @pytest.fixture
    def verifier(
        self, private_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
    ) -> JwtVerifier:
        jwk = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        jwk.update({"kid": "key-1", "use": "sig", "alg": "RS256"})
        # Serve the JWKS document without HTTP; PyJWKClient's caching and kid lookup still run.
        monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", lambda _self: {"keys": [jwk]})
        return JwtVerifier(algorithm="RS256", jwks_url="https://id.example/jwks.json")

    def _sign(self, key: rsa.RSAPrivateKey, claims: dict[str, Any], kid: str = "key-1") -> str:
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def test_valid_rs256_token(self, verifier: JwtVerifier, private_key: rsa.RSAPrivateKey) -> None:
        token = self._sign(private_key, _claims(roles=["member"]))

        assert verifier.verify(token) == Principal("user-1", frozenset({"member"}))

    def test_token_signed_by_another_key_is_refused(self, verifier: JwtVerifier) -> None:
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        error = _refusal(verifier, self._sign(stranger, _claims()))

        assert error.message == "The token signature is not valid."

    def test_unknown_kid_is_refused(
        self, verifier: JwtVerifier, private_key: rsa.RSAPrivateKey
    ) -> None:
        error = _refusal(verifier, self._sign(private_key, _claims(), kid="key-2"))

        assert error.code == "invalid_token"

    def test_hs256_token_is_refused(self, verifier: JwtVerifier) -> None:
        token = mint_token(SECRET, "user-1")

        assert _refusal(verifier, token).code == "invalid_token"

    def test_hs256_token_keyed_with_the_public_key_is_refused(
        self, verifier: JwtVerifier, private_key: rsa.RSAPrivateKey
    ) -> None:
        # The algorithm-confusion attack: the public key (which anyone has) as an HMAC secret.
        public_pem = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        token = _forge({"alg": "HS256", "typ": "JWT", "kid": "key-1"}, _claims(), public_pem)

        error = _refusal(verifier, token)

        assert error.message == "The token is signed with an algorithm that is not accepted."

    def test_jwks_fetch_failure_is_invalid_token(
        self, private_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def unreachable(_self: jwt.PyJWKClient) -> Any:
            raise jwt.PyJWKClientConnectionError("connection refused")

        monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", unreachable)
        verifier = JwtVerifier(algorithm="RS256", jwks_url="https://id.example/jwks.json")

        error = _refusal(verifier, self._sign(private_key, _claims()))

        assert error.code == "invalid_token"


def test_mint_token_claims() -> None:
    token = mint_token(
        SECRET, "user-9", roles=("member",), ttl_seconds=60, issuer="ftd", extra={"name": "N"}
    )

    claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="ftd")

    assert claims["sub"] == "user-9"
    assert claims["roles"] == ["member"]
    assert claims["name"] == "N"
    assert claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("abc.def.ghi", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_worker_key_accepted() -> None:
    check_worker_key("k" * 32, "k" * 32)


@pytest.mark.parametrize("presented", [None, ""])
def test_missing_worker_key_is_401(presented: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        check_worker_key(presented, "k" * 32)

    assert (caught.value.status, caught.value.code) == (401, "missing_worker_key")


@pytest.mark.parametrize("presented", ["wrong", "k" * 31, "k" * 33, "ķ" * 32])
def test_wrong_worker_key_is_403(presented: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_worker_key(presented, "k" * 32)

    assert (caught.value.status, caught.value.code) == (403, "invalid_worker_key")
    assert caught.value.message == "The worker key is not valid."
