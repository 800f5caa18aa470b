"""KeyCache: a known key is read once per `ttl`, a key revoked here is refused at once, an unknown
id is never kept, `ttl` 0 reads every time."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from model_server.domain import keys
from model_server.domain.errors import InvalidApiKey
from model_server.domain.keys import ApiKey
from model_server.service_layer.keys import KeyCache


@dataclass
class Store:
    rows: dict[str, ApiKey] = field(default_factory=dict)
    reads: int = 0

    async def get(self, key_id: str) -> ApiKey | None:
        self.reads += 1
        return self.rows.get(key_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cache_over(store: Store, *, ttl: float, clock: Clock) -> KeyCache:
    @contextlib.asynccontextmanager
    async def read() -> AsyncIterator[Any]:
        yield type("Uow", (), {"keys": store})()

    return KeyCache(read, ttl=ttl, clock=clock)


def new_key(store: Store, user: str = "alice") -> str:
    made = keys.generate()
    store.rows[made.key_id] = ApiKey(
        id=made.key_id,
        user_id=user,
        name="k",
        secret_sha256=made.secret_sha256,
        created_at=datetime.now(UTC),
    )
    return made.plaintext


async def test_a_known_key_is_read_once_per_ttl() -> None:
    store, clock = Store(), Clock()
    cache = cache_over(store, ttl=30, clock=clock)
    token = new_key(store)
    assert [await cache.user_of(token) for _ in range(5)] == ["alice"] * 5
    assert store.reads == 1
    clock.now += 31
    assert await cache.user_of(token) == "alice"
    assert store.reads == 2


async def test_a_key_forgotten_here_is_refused_without_a_read_until_its_ttl_ends() -> None:
    store, clock = Store(), Clock()
    cache = cache_over(store, ttl=30, clock=clock)
    token = new_key(store)
    await cache.user_of(token)
    cache.forget(keys.parse(token).key_id)  # type: ignore[union-attr]
    with pytest.raises(InvalidApiKey):
        await cache.user_of(token)
    assert store.reads == 1
    clock.now += 31  # the row (still active in this store) is read again
    assert await cache.user_of(token) == "alice"


async def test_unknown_ids_and_wrong_secrets_are_refused_and_unknown_ids_not_kept() -> None:
    store, clock = Store(), Clock()
    cache = cache_over(store, ttl=30, clock=clock)
    token = new_key(store)
    unknown = keys.generate().plaintext
    for _ in range(2):
        with pytest.raises(InvalidApiKey):
            await cache.user_of(unknown)
    assert store.reads == 2
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(InvalidApiKey):
        await cache.user_of(wrong)
    with pytest.raises(InvalidApiKey):
        await cache.user_of("not-a-key")


async def test_ttl_zero_reads_every_time() -> None:
    store, clock = Store(), Clock()
    cache = cache_over(store, ttl=0, clock=clock)
    token = new_key(store)
    for _ in range(3):
        assert await cache.user_of(token) == "alice"
    assert store.reads == 3
