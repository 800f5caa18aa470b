"""Output namespaces: the check at job creation, admins' grants, linked Hugging Face accounts,
and the owner's token handed to the worker that pushes the model."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from job_api.adapters.namespaces import Grant
from job_api.domain.errors import InvalidJob
from job_api.domain.namespaces import (
    HubUser,
    Namespace,
    NamespaceError,
    TokenCipher,
    UnreadableToken,
    held_namespaces,
    is_namespace,
    own_namespace,
    owner_of,
    same_namespace,
)
from job_api.service_layer.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

LINK_ROUTE = "PUT /api/account/huggingface"


class HubIdentity(Protocol):
    """Tells whose a Hub token is (adapters.hub_accounts.HubWhoami)."""

    async def whoami(self, token: str) -> HubUser: ...


@dataclass(frozen=True)
class LinkedHub:
    hf_username: str
    linked_at: datetime


async def namespaces_of(uow: UnitOfWork, user_id: str) -> list[Namespace]:
    account = await uow.namespaces.linked_account(user_id)
    grants = await uow.namespaces.grants_of(user_id)
    return held_namespaces(
        user_id, account.hf_username if account else None, [g.namespace for g in grants]
    )


def _not_yours(held: list[Namespace]) -> str:
    how = (
        f"link your Hugging Face account ({LINK_ROUTE}) or ask an admin to grant you an "
        "organisation's namespace"
    )
    if not held:
        return (
            "You hold no namespace to name output models in yet (your user id is not a valid "
            f"Hub name): {how}."
        )
    names = ", ".join(n.name for n in held)
    return (
        f"output_model must be <namespace>/<name> with a namespace you hold: {names}. To use "
        f"another, {how}."
    )


async def check_output_namespace(uow: UnitOfWork, user_id: str, output_model: str) -> None:
    """The owner part of `output_model` must be a namespace `user_id` holds (422
    `output_namespace_not_yours` otherwise, naming the ones they hold). A user's own name costs
    no query."""
    owner = owner_of(output_model)
    own = own_namespace(user_id)
    if own is not None and same_namespace(own, owner):
        return
    if await uow.namespaces.holds(user_id, owner):
        return
    held = await namespaces_of(uow, user_id)
    raise InvalidJob("output_namespace_not_yours", _not_yours(held), "output_model")


async def grant_namespace(
    uow: UnitOfWork, *, namespace: str, user_id: str, granted_by: str
) -> tuple[Grant, bool]:
    """An admin grants `namespace` to `user_id`; returns the grant and whether it is new."""
    if not is_namespace(namespace):
        raise NamespaceError(
            "invalid_namespace",
            "A namespace is a Hub name: runs of letters and digits joined by single '-', '_' or "
            "'.', at most 96 characters.",
        )
    grant, created = await uow.namespaces.grant(namespace, user_id, granted_by)
    if created:
        log.info("namespaces.granted", user_id=user_id, namespace=namespace, by=granted_by)
    return grant, created


async def revoke_namespace(uow: UnitOfWork, *, namespace: str, user_id: str) -> Grant:
    grant = await uow.namespaces.revoke(namespace, user_id)
    if grant is None:
        raise NamespaceError(
            "namespace_grant_not_found",
            "That user holds no grant of that namespace; nothing was revoked.",
            status=404,
        )
    log.info("namespaces.revoked", user_id=user_id, namespace=grant.namespace)
    return grant


async def identify_hub_user(hub: HubIdentity, token: str) -> str:
    """The Hub user name a token belongs to, if it may push models there. Asks the Hub: call it
    before opening a unit of work (no connection is held while waiting)."""
    user = await hub.whoami(token)
    if user.kind != "user":
        raise NamespaceError(
            "hf_token_not_a_user",
            "This token belongs to a Hugging Face organisation, not a user: link your own user "
            "token (an admin can grant you the organisation's namespace).",
        )
    if user.role == "read":
        raise NamespaceError(
            "hf_token_read_only",
            "This token can only read: pushing models needs a token with write access (a "
            "`write` or fine-grained token); nothing was linked.",
        )
    if not is_namespace(user.name):
        raise NamespaceError(
            "hf_unexpected_answer",
            "Hugging Face named a user that is not a valid Hub name; nothing was linked.",
            status=502,
        )
    return user.name


async def link_huggingface(
    uow: UnitOfWork, *, user_id: str, hf_username: str, token: str, cipher: TokenCipher
) -> LinkedHub:
    """Keep the user's token (encrypted) and their Hub user name, which becomes a namespace they
    hold; a second link replaces the first."""
    linked_at = await uow.namespaces.link(user_id, hf_username, cipher.encrypt(token))
    log.info("namespaces.hub_linked", user_id=user_id, hf_username=hf_username)
    return LinkedHub(hf_username=hf_username, linked_at=linked_at)


async def unlink_huggingface(uow: UnitOfWork, *, user_id: str) -> bool:
    removed = await uow.namespaces.unlink(user_id)
    if removed:
        log.info("namespaces.hub_unlinked", user_id=user_id)
    return removed


async def linked_hub(uow: UnitOfWork, user_id: str) -> LinkedHub | None:
    account = await uow.namespaces.linked_account(user_id)
    if account is None:
        return None
    return LinkedHub(hf_username=account.hf_username, linked_at=account.linked_at)


async def linked_hub_token(uow: UnitOfWork, user_id: str, cipher: TokenCipher | None) -> str | None:
    """The job owner's own Hub token, for the worker's push (None: none linked, or it cannot be
    decrypted with the configured keys; the worker then pushes with its own token)."""
    if cipher is None:
        return None
    account = await uow.namespaces.linked_account(user_id)
    if account is None:
        return None
    try:
        return cipher.decrypt(account.token_ciphertext)
    except UnreadableToken:
        log.warning("namespaces.hub_token_unreadable", user_id=user_id)
        return None
