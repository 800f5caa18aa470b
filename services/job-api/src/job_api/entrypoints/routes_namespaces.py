"""Output namespaces (the `owner` of `owner/name` a user may name models in) and the linked
Hugging Face account that gives its user name as one.

A linked token is checked with the Hub (`whoami-v2`), stored encrypted and never returned; the
worker that pushes a job's model gets its owner's token with the claim."""

import contextlib
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from job_api.adapters.hub_accounts import HubWhoami
from job_api.domain.namespaces import (
    HUB_NAME_PART_PATTERN,
    MAX_NAMESPACE_CHARS,
    NamespaceError,
    NamespaceSource,
)
from job_api.entrypoints.deps import StateDep, UserDep, reading, writing
from job_api.service_layer import namespaces as service
from job_api.service_layer.namespaces import LinkedHub
from servicekit.auth import Principal
from servicekit.errors import ApiError
from servicekit.responses import Data, error_responses

router = APIRouter(tags=["namespaces"], responses=error_responses(401, 422))

# A Hub token: printable ASCII, no spaces.
PRINTABLE_NO_SPACE = r"^[!-~]+$"
_PRINTABLE_NO_SPACE = re.compile(PRINTABLE_NO_SPACE)
# A user id as a token's `sub` may hold it: no control characters (PostgreSQL text holds no NUL).
USER_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
UserIdQuery = Annotated[
    str, Query(min_length=1, max_length=200, pattern=USER_ID_PATTERN, description="The user.")
]
NamespaceName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAMESPACE_CHARS,
        pattern=HUB_NAME_PART_PATTERN,
        description="A Hub name: runs of letters and digits joined by single '-', '_' or '.'.",
    ),
]


class NamespaceResponse(BaseModel):
    namespace: str
    source: NamespaceSource = Field(
        description=(
            "`user`: your user name; `huggingface`: the Hugging Face user of your linked token; "
            "`grant`: granted by an admin."
        )
    )


class NamespaceGrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: NamespaceName
    user_id: str = Field(
        min_length=1,
        max_length=200,
        pattern=USER_ID_PATTERN,
        description="The user (a token's `sub`) who may name output models in the namespace.",
    )


class NamespaceGrantResponse(BaseModel):
    namespace: str
    user_id: str
    granted_by: str
    created_at: datetime


class NamespaceRevoked(BaseModel):
    namespace: str
    user_id: str
    revoked: bool = Field(description="Always true: the grant is gone.")


class HuggingFaceLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr = Field(
        min_length=1,
        max_length=512,
        description=(
            "Your Hugging Face access token with write access. Kept encrypted, never returned; "
            "the worker that pushes your models uses it."
        ),
        # Checked below (a SecretStr takes no pattern) and published, so clients know it too.
        json_schema_extra={"pattern": PRINTABLE_NO_SPACE},
    )

    @field_validator("token")
    @classmethod
    def _printable(cls, value: SecretStr) -> SecretStr:
        if not _PRINTABLE_NO_SPACE.fullmatch(value.get_secret_value()):
            raise ValueError("a token is printable ASCII without spaces")
        return value


class HuggingFaceAccount(BaseModel):
    linked: bool
    hf_username: str | None = Field(
        description="The Hugging Face user of the linked token: a namespace you hold."
    )
    linked_at: datetime | None

    @classmethod
    def of(cls, linked: LinkedHub | None) -> "HuggingFaceAccount":
        if linked is None:
            return cls(linked=False, hf_username=None, linked_at=None)
        return cls(linked=True, hf_username=linked.hf_username, linked_at=linked.linked_at)


@contextlib.contextmanager
def _answered() -> Iterator[None]:
    try:
        yield
    except NamespaceError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None


def _admin(user: Principal, action: str) -> None:
    if not user.is_admin:
        raise ApiError(403, "forbidden", f"Only admins may {action}.")


@router.get("/api/namespaces", responses=error_responses(403))
async def list_namespaces(
    state: StateDep,
    user: UserDep,
    user_id: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=USER_ID_PATTERN,
            description="Admins only: another user's namespaces.",
        ),
    ] = None,
) -> Data[list[NamespaceResponse]]:
    """The namespaces you may name output models in (`<namespace>/<name>`), and why."""
    if user_id is not None and user_id != user.user_id:
        _admin(user, "list another user's namespaces")
    async with reading(state) as uow:
        held = await service.namespaces_of(uow, user_id or user.user_id)
    return Data(data=[NamespaceResponse(namespace=n.name, source=n.source) for n in held])


@router.post(
    "/api/namespaces",
    status_code=201,
    responses={
        **error_responses(400, 403, 413, 415),
        200: {"description": "The user held this grant already (it is returned unchanged)."},
    },
)
async def grant_namespace(
    body: NamespaceGrantCreate, state: StateDep, user: UserDep, response: Response
) -> Data[NamespaceGrantResponse]:
    """Admins: let a user name output models in an organisation's namespace."""
    _admin(user, "grant namespaces")
    with _answered():
        async with writing(state) as uow:
            grant, created = await service.grant_namespace(
                uow, namespace=body.namespace, user_id=body.user_id, granted_by=user.user_id
            )
    if not created:
        response.status_code = 200
    return Data(
        data=NamespaceGrantResponse(
            namespace=grant.namespace,
            user_id=grant.user_id,
            granted_by=grant.granted_by,
            created_at=grant.created_at,
        )
    )


@router.delete("/api/namespaces/{namespace}", responses=error_responses(403, 404))
async def revoke_namespace(
    namespace: Annotated[str, Path(max_length=MAX_NAMESPACE_CHARS, pattern=HUB_NAME_PART_PATTERN)],
    user_id: UserIdQuery,
    state: StateDep,
    user: UserDep,
) -> Data[NamespaceRevoked]:
    """Admins: take a granted namespace back from a user (their jobs already created keep it)."""
    _admin(user, "revoke namespaces")
    with _answered():
        async with writing(state) as uow:
            grant = await service.revoke_namespace(uow, namespace=namespace, user_id=user_id)
    return Data(
        data=NamespaceRevoked(namespace=grant.namespace, user_id=grant.user_id, revoked=True)
    )


@router.get("/api/account/huggingface")
async def get_huggingface_account(state: StateDep, user: UserDep) -> Data[HuggingFaceAccount]:
    """Your linked Hugging Face user, if any (the token itself is never returned)."""
    async with reading(state) as uow:
        linked = await service.linked_hub(uow, user.user_id)
    return Data(data=HuggingFaceAccount.of(linked))


@router.put("/api/account/huggingface", responses=error_responses(400, 413, 415, 502))
async def link_huggingface_account(
    body: HuggingFaceLink, state: StateDep, user: UserDep
) -> Data[HuggingFaceAccount]:
    """Link your Hugging Face account with one of its write tokens: its user name becomes a
    namespace you hold, and your models are pushed with it. Linking again replaces the token."""
    cipher = state.policy.token_cipher
    assert cipher is not None, "the app always has a cipher"
    token = body.token.get_secret_value()
    with _answered():
        # Asked before the unit of work opens: no connection is held while the Hub answers.
        hf_username = await service.identify_hub_user(HubWhoami(state.policy.hf_endpoint), token)
        async with writing(state) as uow:
            linked = await service.link_huggingface(
                uow, user_id=user.user_id, hf_username=hf_username, token=token, cipher=cipher
            )
    return Data(data=HuggingFaceAccount.of(linked))


@router.delete("/api/account/huggingface")
async def unlink_huggingface_account(state: StateDep, user: UserDep) -> Data[HuggingFaceAccount]:
    """Forget your Hugging Face token and the namespace it gave you (pushes use the platform's
    token again)."""
    async with writing(state) as uow:
        await service.unlink_huggingface(uow, user_id=user.user_id)
    return Data(data=HuggingFaceAccount.of(None))
