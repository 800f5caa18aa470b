"""The Hugging Face Hub, for the one thing the registry does there: delete a repository the user
explicitly asked to delete (with the platform's token, never the user's)."""

import asyncio

import httpx
import structlog
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from registry_service.domain.errors import RepoDeletionRefused

log = structlog.get_logger(__name__)


class HubClient:
    def __init__(self, token: str, *, endpoint: str | None = None) -> None:
        self._api = HfApi(token=token, endpoint=endpoint)

    async def delete_repo(self, repo_id: str) -> None:
        """Delete the model repository; one already gone counts as deleted."""
        try:
            await asyncio.to_thread(
                self._api.delete_repo, repo_id, repo_type="model", missing_ok=True
            )
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            log.warning("registry.hub_delete_failed", repo_id=repo_id, status=status)
            raise RepoDeletionRefused(
                "hub_delete_failed",
                f"The Hub refused to delete {repo_id} (HTTP {status}); nothing was deleted.",
                status=502,
            ) from None
        except (httpx.HTTPError, OSError) as exc:
            log.warning("registry.hub_unreachable", repo_id=repo_id, error=type(exc).__name__)
            raise RepoDeletionRefused(
                "hub_unreachable",
                f"The Hub could not be reached to delete {repo_id}; nothing was deleted.",
                status=502,
            ) from None
        log.info("registry.hub_repo_deleted", repo_id=repo_id)
