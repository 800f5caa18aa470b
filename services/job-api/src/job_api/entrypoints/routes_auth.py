"""Development sign-in: mints a user token so that the UI can be tried without an identity
provider. Answers only when FTD_ENV=development and tokens are HS256 (the secret is ours); in any
other environment both routes are 404 `dev_sign_in_disabled`, so production can never mint one.

The token is returned in the body only (never a cookie, never a URL) and is not logged."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from servicekit.auth import mint_token
from servicekit.errors import ApiError
from servicekit.responses import Data, error_responses

router = APIRouter(prefix="/api/auth", tags=["auth"], responses=error_responses(404))

# A user id the UI can show and every service can store: letters, digits and . _ @ + -.
SUB_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$"
TOKEN_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class DevSignIn:
    """What the routes need, built by create_app; `secret` is None when sign-in is disabled."""

    secret: str | None
    audience: str | None = None
    issuer: str | None = None


class DevSignInStatus(BaseModel):
    enabled: bool = Field(description="Always true: the route is 404 when sign-in is disabled.")


class DevTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sub: str = Field(
        pattern=SUB_PATTERN,
        description="The user to sign in as (the token's `sub`).",
        examples=["alice"],
    )


class DevToken(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.")


async def _enabled(request: Request) -> DevSignIn:
    config: DevSignIn = request.app.state.dev_sign_in
    if config.secret is None:
        raise ApiError(
            404,
            "dev_sign_in_disabled",
            "Development sign-in is off: it exists only when FTD_ENV=development with HS256 tokens.",
        )
    return config


EnabledDep = Annotated[DevSignIn, Depends(_enabled)]


@router.get("/dev-token")
async def dev_sign_in_status(_config: EnabledDep) -> Data[DevSignInStatus]:
    """Whether the development sign-in is offered (200) or not (404)."""
    return Data(data=DevSignInStatus(enabled=True))


@router.post("/dev-token", responses=error_responses(422))
async def dev_token(body: DevTokenRequest, config: EnabledDep) -> Data[DevToken]:
    """A 24-hour user token for `sub` (development only; no admin role)."""
    assert config.secret is not None
    token = mint_token(
        config.secret,
        body.sub,
        ttl_seconds=TOKEN_TTL_SECONDS,
        audience=config.audience,
        issuer=config.issuer,
    )
    return Data(data=DevToken(access_token=token, expires_in=TOKEN_TTL_SECONDS))
