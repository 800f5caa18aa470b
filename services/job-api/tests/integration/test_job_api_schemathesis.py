"""The OpenAPI document tells the truth: schemathesis generates requests from /openapi.json and
checks every answer against it (status codes, content types, headers, bodies, Allow on 405),
against a live job-api served by uvicorn over TCP, with a user token and the worker key."""

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from job_api_testing import WORKER_KEY, served_app, user_headers

from job_api.config import Settings

pytestmark = pytest.mark.integration

# Enough cases to cover every operation, status and parameter shape, small enough to stay well
# under two minutes on a loaded laptop.
TESTS = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = int(os.environ.get("FTD_SCHEMATHESIS_EXAMPLES", "10"))


def _config(user_token: str) -> str:
    return f"""
# A live stream never ends: judge it on its first event (the snapshot).
max-stream-events = 1

[generation]
max-examples = {MAX_EXAMPLES}

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
    settings = settings_factory(access_log=False)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(user_headers("alice")["Authorization"]))
    async with served_app(settings) as (client, _app):
        url = f"{client.base_url}/openapi.json"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--no-color",
            "--config-file",
            str(config),
            "run",
            url,
            "--checks",
            "all",
            "--exclude-checks",
            "ignored_auth,object_level_authorization",
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "2",
            # Also bounds how long a live stream (SSE) is read before it is judged.
            "--request-timeout",
            "3",
            "--suppress-health-check",
            "all",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": "job_api_schemathesis_hooks",
                "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            },
            cwd=tmp_path,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 280)
    text = out.decode()
    print(text)  # the whole report, shown by pytest when the test fails
    assert process.returncode == 0, text[-3000:]
