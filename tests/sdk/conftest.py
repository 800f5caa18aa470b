"""The whole platform for the SDK and CLI tests, started once for the session (gateway, the
services and a CPU worker that trains classifiers and LoRA adapters of the offline tiny Llama,
tests/e2e/ftd_stack.py)."""

from collections.abc import Iterator

import pytest
from ftd import Client
from ftd_stack import Stack, full_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with full_stack(
        tmp_path_factory.mktemp("sdk-stack"), worker_job_types=["classifier", "llm_lora"]
    ) as s:
        yield s


@pytest.fixture(scope="session")
def token(stack: Stack) -> str:
    return stack.token("sdk-alice", ttl_seconds=3 * 3600)


@pytest.fixture(scope="session")
def sdk(stack: Stack, token: str) -> Iterator[Client]:
    with Client(stack.base_url, token, timeout=60) as client:
        yield client
