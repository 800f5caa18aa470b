"""docs/openapi/job-api.json is the document the code serves, and it keeps the brief's contract."""

import json
from pathlib import Path

from job_api.entrypoints.cli import openapi_document

DOC = Path(__file__).resolve().parents[4] / "docs" / "openapi" / "job-api.json"


def test_the_committed_openapi_document_is_current() -> None:
    assert DOC.read_text() == openapi_document(), (
        "docs/openapi/job-api.json is stale: run `make openapi`"
    )


def test_the_brief_routes_are_documented_with_their_methods() -> None:
    paths = json.loads(openapi_document())["paths"]
    assert set(paths["/api/finetune/jobs"]) == {"get", "post"}
    assert set(paths["/api/finetune/jobs/{job_id}"]) == {"get", "patch", "delete"}
    assert set(paths["/api/finetune/jobs/pending"]) == {"get"}
    created = paths["/api/finetune/jobs"]["post"]["responses"]
    assert "201" in created
    assert "422" in created
