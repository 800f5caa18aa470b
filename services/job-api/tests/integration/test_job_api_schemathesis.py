"""The OpenAPI document tells the truth: schemathesis generates requests from /openapi.json and
checks every answer against it (status codes, content types, headers, bodies, Allow on 405),
against a live job-api served by uvicorn over TCP, with a user token and the worker key."""

from collections.abc import Callable
from pathlib import Path

import pytest
from job_api_testing import WORKER_KEY, served_app, user_headers
from schemathesis_run import run_schemathesis
from stand_in_hub import stand_in_hub, write_user

from job_api.config import Settings

pytestmark = pytest.mark.integration


def _config(user_token: str) -> str:
    return f"""
# A live stream never ends: judge it on its first event (the snapshot).
max-stream-events = 1

[[operations]]
include-path-regex = "^/v1/fine_tuning/"
headers = {{ Authorization = "{user_token}" }}
# OpenAI's convention: what the server refuses after the schema (a model not in the catalogue, a
# file not announced yet) is a 400 or a 409 `dataset_not_ready`.
checks.positive_data_acceptance.expected-statuses = ["2XX", "400", "401", "404", "409"]

[[operations]]
include-path = "/api/finetune/jobs"
include-method = "POST"
headers = {{ Authorization = "{user_token}" }}
# output_model's owner is checked against the caller's namespaces after the schema: a
# schema-valid name in someone else's namespace is the documented 422
# `output_namespace_not_yours` (as unknown datasets are the documented 404).
checks.positive_data_acceptance.expected-statuses = ["2XX", "401", "403", "404", "409", "422"]

[[operations]]
include-tag = "worker"
headers = {{ Authorization = "Bearer {WORKER_KEY}" }}

[[operations]]
exclude-tag = "worker"
headers = {{ Authorization = "{user_token}" }}
"""


@pytest.mark.timeout(300)
async def test_openapi_document_matches_the_live_api(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    # Linking an account asks the Hub whose the token is: a stand-in vouches for every token.
    async with (
        stand_in_hub(lambda _token: (200, write_user("schemathesis-hf"))) as (_hub, hub),
        served_app(settings_factory(access_log=False, hf_endpoint=hub)) as (client, _app),
    ):
        status, report = await run_schemathesis(
            f"{client.base_url}/openapi.json",
            _config(user_headers("alice")["Authorization"]),
            tmp_path,
        )
    print(report)  # the whole report, shown by pytest when the test fails
    assert status == 0, report[-3000:]
