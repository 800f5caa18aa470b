"""The deployed models of a user, from registry-service (`GET /api/models?status=deployed`)."""

from typing import Any

import httpx

from gpu_worker.serve.sources import KINDS, ModelSource


class RegistryError(RuntimeError):
    pass


def deployed_models(base_url: str, token: str, *, timeout: float = 30) -> list[ModelSource]:
    """Every deployed embedding and classifier model of the token's user (LoRA adapters are
    served by vLLM, not here)."""
    sources: list[ModelSource] = []
    cursor: str | None = None
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout) as client:
        while True:
            params: dict[str, Any] = {"status": "deployed", "limit": 200}
            if cursor:
                params["cursor"] = cursor
            response = client.get("/api/models", params=params)
            if response.status_code != 200:
                raise RegistryError(
                    f"the registry answered {response.status_code} to GET /api/models: "
                    f"{_message(response)}"
                )
            page = response.json()
            for model in page["data"]:
                if model["job_type"] in KINDS:
                    sources.append(
                        ModelSource(
                            name=model["name"],
                            uri=model["uri"],
                            kind=model["job_type"],
                            store=model["store"],
                            repo_id=model["repo_id"],
                            revision=model["revision"],
                            owner=model.get("user_id"),
                        )
                    )
            cursor = page.get("next_cursor")
            if not cursor:
                return sources


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase
