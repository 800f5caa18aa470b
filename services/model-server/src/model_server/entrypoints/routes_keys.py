"""`/api/keys`: a user's API keys for the `/v1/` routes. The key itself is in the creation's
answer only; listings show its id and name."""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response

from model_server.domain.keys import ApiKey
from model_server.entrypoints.deps import ReadUowDep, StateDep, UowDep, UserDep
from model_server.entrypoints.schemas import KeyRequest
from model_server.service_layer.keys import create_key, revoke_key

router = APIRouter(prefix="/api/keys", tags=["keys"])


def _shown(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": f"ftdk_{key.id}_",
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "active": key.active,
    }


@router.post("", status_code=201)
async def create(body: KeyRequest, user: UserDep, uow: UowDep) -> dict[str, Any]:
    """A new API key; `key` is shown here once and never again (only its hash is kept)."""
    key, new = await create_key(uow, user_id=user.user_id, name=body.name, now=datetime.now(UTC))
    return {"data": {**_shown(key), "key": new.plaintext}}


@router.get("")
async def list_keys(user: UserDep, uow: ReadUowDep) -> dict[str, Any]:
    """The caller's keys, newest first (revoked ones included)."""
    return {"data": [_shown(k) for k in await uow.keys.of_user(user.user_id)]}


@router.delete("/{key_id}", status_code=204)
async def revoke(key_id: str, user: UserDep, uow: UowDep, state: StateDep) -> Response:
    """Revoke a key: it is refused from the next request on (by every replica within
    `MODEL_SERVER_API_KEY_CACHE_SECONDS`)."""
    await revoke_key(uow, user_id=user.user_id, key_id=key_id, now=datetime.now(UTC))
    state.keys.forget(key_id)
    return Response(status_code=204)
