"""registry-service's OpenAPI document tells the truth: schemathesis generates requests from
/openapi.json and checks every answer against it, against a live registry-service served by
uvicorn over TCP, with a user token."""

from collections.abc import Callable
from pathlib import Path

import pytest
from registry_testing import served, user_headers
from schemathesis_run import run_schemathesis

from registry_service.config import Settings

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
async def test_openapi_document_matches_the_live_api(
    registry_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    token = user_headers("alice")["Authorization"]
    config = f'headers = {{ Authorization = "{token}" }}\n'
    async with served(registry_settings()) as client:
        status, report = await run_schemathesis(f"{client.base_url}/openapi.json", config, tmp_path)
    print(report)  # the whole report, shown by pytest when the test fails
    assert status == 0, report[-3000:]
