"""Output namespaces without I/O: which namespaces a user holds, the check at job creation, the
Hub's answer about a token, the token cipher and the token handed to the worker."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.catalogue import Catalogue
from contracts.enums import GPUProvider, JobType
from job_api.adapters.namespaces import Grant, LinkedAccount
from job_api.adapters.token_cipher import DEVELOPMENT_INFO, FernetCipher, cipher_from, derive_key
from job_api.domain.errors import InvalidJob
from job_api.domain.job import Job
from job_api.domain.namespaces import (
    HubUser,
    Namespace,
    NamespaceError,
    NamespaceSource,
    UnreadableToken,
    held_namespaces,
    is_namespace,
    own_namespace,
)
from job_api.service_layer import namespaces as service
from job_api.service_layer.dispatch import job_spec
from job_api.service_layer.unit_of_work import Policy

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
TOKEN = "hf_bobsOwnWriteToken0123456789abcdef"


class FakeNamespaces:
    """NamespaceRepository in memory (same methods); `calls` counts the queries."""

    def __init__(self) -> None:
        self.grants: list[Grant] = []
        self.accounts: dict[str, LinkedAccount] = {}
        self.calls = 0

    async def holds(self, user_id: str, namespace: str) -> bool:
        self.calls += 1
        account = self.accounts.get(user_id)
        linked = account is not None and account.hf_username.lower() == namespace.lower()
        return linked or any(
            g.user_id == user_id and g.namespace.lower() == namespace.lower() for g in self.grants
        )

    async def grants_of(self, user_id: str) -> list[Grant]:
        self.calls += 1
        return [g for g in self.grants if g.user_id == user_id]

    async def linked_account(self, user_id: str) -> LinkedAccount | None:
        self.calls += 1
        return self.accounts.get(user_id)

    async def link(self, user_id: str, hf_username: str, token_ciphertext: str) -> datetime:
        self.accounts[user_id] = LinkedAccount(user_id, hf_username, token_ciphertext, NOW)
        return NOW


class FakeUow:
    def __init__(self) -> None:
        self.namespaces = FakeNamespaces()


def grant(uow: FakeUow, namespace: str, user_id: str) -> None:
    uow.namespaces.grants.append(Grant(namespace, user_id, "root", NOW))


def test_a_namespace_is_a_hub_name() -> None:
    for good in ("alice", "Alice-2", "acme.ai", "a_b", "x" * 96):
        assert is_namespace(good), good
    for bad in ("", "-a", "a-", "a--b", "a/b", "a b", "ä", "auth0|123", "x" * 97, "a\x00"):
        assert not is_namespace(bad), bad
    assert own_namespace("alice") == "alice"
    assert own_namespace("auth0|123") is None


def test_held_namespaces_in_order_each_once() -> None:
    held = held_namespaces("alice", "Alice", ["acme", "ACME", "labs"])
    assert held == [
        Namespace("alice", NamespaceSource.USER),
        Namespace("acme", NamespaceSource.GRANT),
        Namespace("labs", NamespaceSource.GRANT),
    ]
    assert held_namespaces("auth0|1", None, []) == []
    assert held_namespaces("auth0|1", "bob-hf", []) == [
        Namespace("bob-hf", NamespaceSource.HUGGINGFACE)
    ]


async def test_the_own_name_costs_no_query_whatever_its_case() -> None:
    uow = FakeUow()
    await service.check_output_namespace(uow, "alice", "alice/emb")  # type: ignore[arg-type]
    await service.check_output_namespace(uow, "alice", "ALICE/emb")  # type: ignore[arg-type]
    assert uow.namespaces.calls == 0


async def test_another_users_namespace_is_refused_naming_only_the_callers() -> None:
    uow = FakeUow()
    grant(uow, "alice-corp", "alice")
    grant(uow, "bobs-lab", "bob")
    with pytest.raises(InvalidJob) as refused:
        await service.check_output_namespace(uow, "bob", "alice/emb1")  # type: ignore[arg-type]
    assert refused.value.code == "output_namespace_not_yours"
    assert refused.value.field == "output_model"
    message = str(refused.value)
    assert "bob, bobs-lab" in message
    assert "alice" not in message  # neither the name asked for nor alice's namespaces


async def test_grants_and_the_linked_hub_user_give_namespaces() -> None:
    uow = FakeUow()
    grant(uow, "Acme", "bob")
    uow.namespaces.accounts["bob"] = LinkedAccount("bob", "bob-hf", "x", NOW)
    for output in ("acme/m", "ACME/m", "bob-hf/m", "Bob-HF/m"):
        await service.check_output_namespace(uow, "bob", output)  # type: ignore[arg-type]
    # A grant is the grantee's alone.
    with pytest.raises(InvalidJob):
        await service.check_output_namespace(uow, "carol", "acme/m")  # type: ignore[arg-type]


async def test_a_user_id_that_is_no_hub_name_holds_nothing_until_linked() -> None:
    uow = FakeUow()
    with pytest.raises(InvalidJob) as refused:
        await service.check_output_namespace(uow, "auth0|123", "auth0/m")  # type: ignore[arg-type]
    assert "You hold no namespace" in str(refused.value)
    assert "/api/account/huggingface" in str(refused.value)


@pytest.mark.parametrize(
    ("user", "code"),
    [
        (HubUser("acme", "org", "write"), "hf_token_not_a_user"),
        (HubUser("bob", "user", "read"), "hf_token_read_only"),
        (HubUser("bob--x", "user", "write"), "hf_unexpected_answer"),
    ],
)
async def test_tokens_that_cannot_push_are_refused(user: HubUser, code: str) -> None:
    class Hub:
        async def whoami(self, token: str) -> HubUser:
            return user

    with pytest.raises(NamespaceError) as refused:
        await service.identify_hub_user(Hub(), TOKEN)
    assert refused.value.code == code
    assert TOKEN not in str(refused.value)


async def test_write_and_fine_grained_tokens_are_accepted() -> None:
    for role in ("write", "fineGrained", None):

        class Hub:
            async def whoami(self, token: str, role: Any = role) -> HubUser:
                return HubUser("bob-hf", "user", role)

        assert await service.identify_hub_user(Hub(), TOKEN) == "bob-hf"


async def test_grant_refuses_a_name_that_is_no_hub_name() -> None:
    with pytest.raises(NamespaceError) as refused:
        await service.grant_namespace(
            FakeUow(),  # type: ignore[arg-type]
            namespace="no/slash",
            user_id="bob",
            granted_by="root",
        )
    assert refused.value.code == "invalid_namespace"


def test_the_cipher_round_trips_and_hides_the_token() -> None:
    cipher = cipher_from("a-strong-secret-0123456789abcdef", development_secret=None)
    sealed = cipher.encrypt(TOKEN)
    assert TOKEN not in sealed
    assert sealed != cipher.encrypt(TOKEN)  # random IV: equal tokens do not look equal
    assert cipher.decrypt(sealed) == TOKEN
    assert "strong" not in repr(cipher)
    other = cipher_from("another-secret-0123456789abcdef", development_secret=None)
    with pytest.raises(UnreadableToken):
        other.decrypt(sealed)


def test_keys_rotate_the_first_encrypts_every_one_decrypts() -> None:
    old = cipher_from("old-secret-0123456789abcdef", development_secret=None)
    sealed_before = old.encrypt(TOKEN)
    rotated = cipher_from(
        "new-secret-0123456789abcdef, old-secret-0123456789abcdef", development_secret=None
    )
    assert rotated.decrypt(sealed_before) == TOKEN
    sealed_after = rotated.encrypt(TOKEN)
    with pytest.raises(UnreadableToken):
        old.decrypt(sealed_after)


def test_development_derives_a_key_from_the_jwt_secret_in_its_own_context() -> None:
    jwt_secret = "dev-jwt-secret-0123456789abcdef"
    dev = cipher_from(None, development_secret=jwt_secret)
    assert dev.decrypt(cipher_from(None, development_secret=jwt_secret).encrypt("x")) == "x"
    # Not the key FTD_SECRETS_KEY=<the same text> would give: the derivations differ.
    assert derive_key(jwt_secret, info=DEVELOPMENT_INFO) != derive_key(jwt_secret)
    with pytest.raises(UnreadableToken):
        cipher_from(jwt_secret, development_secret=None).decrypt(dev.encrypt("x"))
    with pytest.raises(ValueError, match="FTD_SECRETS_KEY"):
        cipher_from(None, development_secret=None)
    with pytest.raises(ValueError, match="at least one key"):
        FernetCipher([])


def _job(user_id: str) -> Job:
    return Job(
        id=uuid.uuid4(),
        user_id=user_id,
        project_id=None,
        job_type=JobType.EMBEDDING,
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        training_data_url="https://data.example.com/train.csv",
        dataset_id=None,
        output_model=f"{user_id}/m",
        gpu_provider=GPUProvider.LOCAL,
        hyperparameters={},
        max_attempts=3,
        created_at=NOW,
        updated_at=NOW,
        dispatched_at=NOW,
        lease_expires_at=NOW + timedelta(seconds=90),
    )


async def test_the_claim_carries_the_owners_linked_token_and_only_theirs() -> None:
    cipher = cipher_from("a-strong-secret-0123456789abcdef", development_secret=None)
    policy = Policy(catalogue=Catalogue(include_offline=True), token_cipher=cipher)
    uow = FakeUow()
    uow.namespaces.accounts["bob"] = LinkedAccount("bob", "bob-hf", cipher.encrypt(TOKEN), NOW)
    spec = await job_spec(uow, _job("bob"), policy, "claim-secret")  # type: ignore[arg-type]
    assert spec.hub_token == TOKEN
    assert TOKEN not in repr(spec)
    assert (await job_spec(uow, _job("alice"), policy, "s")).hub_token is None  # type: ignore[arg-type]
    # A token sealed with a key no longer configured: the worker's own token is used.
    uow.namespaces.accounts["bob"] = LinkedAccount("bob", "bob-hf", "not-a-fernet-token", NOW)
    assert (await job_spec(uow, _job("bob"), policy, "s")).hub_token is None  # type: ignore[arg-type]
