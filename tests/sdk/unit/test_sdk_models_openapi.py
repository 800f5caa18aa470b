"""The SDK's response models say what the committed OpenAPI documents say: every property the
server documents as required is a field, and no field is one the server does not send."""

import json
from pathlib import Path
from typing import Any

import pytest
from ftd import models
from pydantic import BaseModel

DOCS = Path(__file__).resolve().parents[3] / "docs" / "openapi"

CASES = [
    ("job-api", "FinetuneJobResponse", models.JobInfo),
    ("job-api", "JobEventResponse", models.JobEvent),
    ("job-api", "BaseModelsResponse", models.BaseModels),
    ("job-api", "BaseModelInfo", models.BaseModelInfo),
    ("job-api", "WaitingNotice", models.WaitingNotice),
    ("data-service", "DatasetResponse", models.Dataset),
    ("data-service", "DryRunResponse", models.DryRun),
    ("registry-service", "ModelResponse", models.RegisteredModel),
]


def schema(document: str, name: str) -> dict[str, Any]:
    doc = json.loads((DOCS / f"{document}.json").read_text())
    found: dict[str, Any] = doc["components"]["schemas"][name]
    return found


@pytest.mark.parametrize(("document", "name", "model"), CASES)
def test_each_model_has_the_documented_fields(
    document: str, name: str, model: type[BaseModel]
) -> None:
    documented = schema(document, name)
    fields = set(model.model_fields)
    assert set(documented.get("required", [])) <= fields, "a documented field is missing"
    assert fields <= set(documented["properties"]), "a field the server does not document"


@pytest.mark.parametrize(
    ("document", "name", "enum"),
    [
        ("job-api", "JobStatus", models.JobStatus),
        ("job-api", "JobType", models.JobType),
        ("registry-service", "ModelStatus", models.ModelStatus),
    ],
)
def test_enums_match(document: str, name: str, enum: Any) -> None:
    assert {str(v) for v in enum} == set(schema(document, name)["enum"])
