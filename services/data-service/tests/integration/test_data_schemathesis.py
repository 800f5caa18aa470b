"""data-service's OpenAPI document tells the truth: schemathesis generates requests (uploads
included) from /openapi.json and checks every answer against it, against a live data-service
served by uvicorn over TCP, with a user token."""

from pathlib import Path

import pytest
from data_service_testing import user_headers
from schemathesis_run import run_schemathesis

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
async def test_openapi_document_matches_the_live_api(data_url: str, tmp_path: Path) -> None:
    token = user_headers("alice")["Authorization"]
    config = f"""
headers = {{ Authorization = "{token}" }}

[[operations]]
include-path = "/api/finetune/upload"
# A file's content (encoding, columns, rows) is checked after the schema: a schema-valid upload
# of a file that is not a dataset is the documented 422 `invalid_dataset`.
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "400", "401", "403", "404", "409", "413", "415", "422", "429",
]

[[operations]]
include-path = "/v1/files"
# The same for OpenAI's files: refusals are 400s (OpenAI's convention), an unknown `after` 404.
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "400", "401", "404", "413", "415", "429",
]
"""
    status, report = await run_schemathesis(f"{data_url}/openapi.json", config, tmp_path)
    print(report)  # the whole report, shown by pytest when the test fails
    assert status == 0, report[-3000:]
