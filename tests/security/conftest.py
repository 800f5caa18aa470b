"""One stack for the whole security suite (about 30 s to start): see security_stack.py."""

from collections.abc import Iterator

import pytest
from security_stack import SecurityStack, security_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[SecurityStack]:
    with security_stack() as running:
        yield running
