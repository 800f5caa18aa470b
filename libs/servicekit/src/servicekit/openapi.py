"""Amendments to a service's generated OpenAPI document (through `Service.openapi`) that say what
servicekit's own middleware answers, which FastAPI cannot see from the routes."""

from typing import Any

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_BODY_REFUSALS = {
    "400": "The body is not valid JSON (`invalid_json`).",
    "413": "The body is larger than this service accepts (`payload_too_large`).",
    "415": "The body is not declared as application/json (`unsupported_media_type`).",
}


def document_body_errors(document: dict[str, Any]) -> None:
    """Operations that read a JSON body can also answer 400 (not JSON), 413 (too large,
    servicekit.http.BodyLimitMiddleware) and 415 (not declared as JSON, JsonBodyMiddleware): say
    so, unless the operation already documents that status."""
    for operations in document["paths"].values():
        for operation in operations.values():
            if "requestBody" in operation:
                for status, description in _BODY_REFUSALS.items():
                    operation["responses"].setdefault(
                        status, {"description": description, "content": _ERROR}
                    )
