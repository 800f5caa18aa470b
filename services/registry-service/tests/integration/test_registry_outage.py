"""registry-service with its database unreachable answers 503 `service_unavailable` with
Retry-After for reads and writes (servicekit's error mapping), over a real TCP connection."""

import uuid
from collections.abc import Callable

import pytest
from registry_testing import MODELS, served, user_headers

from registry_service.config import Settings
from servicekit.testing import free_socket

pytestmark = pytest.mark.integration


async def test_reads_and_writes_are_503_while_the_database_is_unreachable(
    registry_settings: Callable[..., Settings],
) -> None:
    closed = free_socket()  # bound, never listening
    port = closed.getsockname()[1]
    settings = registry_settings(
        database_url=f"postgresql://registry_service:secret@127.0.0.1:{port}/finetune",
        run_relay=False,
        run_consumers=False,
    )
    try:
        async with served(settings) as client:
            alice = user_headers("alice")
            for response in (
                await client.get(MODELS, headers=alice),
                await client.post(f"{MODELS}/{uuid.uuid4()}/deploy", headers=alice),
            ):
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"].isdigit()
                assert response.json()["error"]["code"] == "service_unavailable"
    finally:
        closed.close()
