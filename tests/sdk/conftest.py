"""The SDK and CLI tests run against `make dev`'s platform, started once for the session
(tests/conftest.py: the gateway, the services and the CPU worker, which trains classifiers and
LoRA adapters of the offline tiny Llama)."""

from collections.abc import Iterator

import pytest
from ftd import Client
from ftd_stack import Stack


@pytest.fixture(scope="session")
def stack(dev_platform: Stack) -> Stack:
    return dev_platform


@pytest.fixture(scope="session")
def token(stack: Stack) -> str:
    return stack.token("sdk-alice", ttl_seconds=3 * 3600)


@pytest.fixture(scope="session")
def sdk(stack: Stack, token: str) -> Iterator[Client]:
    with Client(stack.base_url, token, timeout=60) as client:
        yield client
