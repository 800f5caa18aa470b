"""docs/openapi/data-service.json is the document the code serves, with the routes of the issue."""

import json
from pathlib import Path

from data_service.entrypoints.cli import openapi_document

DOC = Path(__file__).resolve().parents[4] / "docs" / "openapi" / "data-service.json"


def test_the_committed_openapi_document_is_current() -> None:
    assert DOC.read_text() == openapi_document(), (
        "docs/openapi/data-service.json is stale: run `uv run data-service openapi`"
    )


def test_the_routes_are_documented_with_their_methods() -> None:
    paths = json.loads(openapi_document())["paths"]
    assert set(paths["/api/finetune/upload"]) == {"post"}
    assert "multipart/form-data" in paths["/api/finetune/upload"]["post"]["requestBody"]["content"]
    assert set(paths["/api/finetune/datasets"]) == {"get"}
    assert set(paths["/api/finetune/datasets/{dataset_id}"]) == {"get", "delete"}
    assert set(paths["/api/finetune/datasets/{dataset_id}/preview"]) == {"get"}
    assert set(paths["/api/finetune/datasets/{dataset_id}/download"]) == {"get"}
