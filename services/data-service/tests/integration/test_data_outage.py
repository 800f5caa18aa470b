"""data-service with its database unreachable answers 503 `service_unavailable` with
Retry-After for reads and writes (servicekit's error mapping), over a real TCP connection; an
upload that cannot be recorded leaves no file behind."""

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from data_service_testing import classifier_csv, files, served, stored_files, user_headers

from data_service.config import Settings
from data_service.entrypoints.app import create_app
from servicekit.testing import free_socket

pytestmark = pytest.mark.integration


async def test_reads_and_uploads_are_503_while_the_database_is_unreachable(
    data_settings_factory: Callable[..., Settings], storage_dir: Path
) -> None:
    closed = free_socket()  # bound, never listening
    port = closed.getsockname()[1]
    settings = data_settings_factory(
        database_url=f"postgresql://data_service:secret@127.0.0.1:{port}/finetune",
        run_relay=False,
        run_consumers=False,
    )
    try:
        async with (
            served(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            alice = user_headers("alice")
            for response in (
                await client.get("/api/finetune/datasets", headers=alice),
                await client.post("/api/finetune/upload", headers=alice, **files(classifier_csv())),
            ):
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"].isdigit()
                assert response.json()["error"]["code"] == "service_unavailable"
        assert stored_files(storage_dir) == []
    finally:
        closed.close()
