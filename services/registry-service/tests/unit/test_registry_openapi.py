"""docs/openapi/registry-service.json is the document the code serves."""

import json
from pathlib import Path

from registry_service.entrypoints.cli import openapi_document

DOC = Path(__file__).resolve().parents[4] / "docs" / "openapi" / "registry-service.json"


def test_the_committed_openapi_document_is_current() -> None:
    assert DOC.read_text() == openapi_document(), (
        "docs/openapi/registry-service.json is stale: run `make openapi`"
    )


def test_the_model_routes_are_documented() -> None:
    paths = json.loads(openapi_document())["paths"]
    assert set(paths["/api/models"]) == {"get"}
    assert set(paths["/api/models/{model_id}"]) == {"get", "delete"}
    assert set(paths["/api/models/{model_id}/deploy"]) == {"post"}
    assert set(paths["/api/models/{model_id}/undeploy"]) == {"post"}
    assert set(paths["/api/models/litellm-config"]) == {"get"}
    assert "409" in paths["/api/models/{model_id}/deploy"]["post"]["responses"]
