"""One `make dev` for the whole session, shared by the tests that drive the platform as a new
user does (tests/readme, tests/sdk, the openai package's example and the serving test in
tests/e2e): the README's command itself, not a look-alike (tests/e2e/dev_stack.py)."""

from collections.abc import Iterator

import pytest
from dev_stack import dev_stack
from ftd_stack import Stack


@pytest.fixture(scope="session")
def dev_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with dev_stack(tmp_path_factory.mktemp("make-dev")) as stack:
        yield stack
