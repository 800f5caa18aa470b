"""The Hugging Face Hub's `whoami-v2`: whose a token is (linking an account)."""

from typing import Any

import httpx
import structlog

from job_api.domain.namespaces import HubUser, NamespaceError

log = structlog.get_logger(__name__)


class HubWhoami:
    """Asks `GET {endpoint}/api/whoami-v2` with the token. The token goes in the Authorization
    header only and is never logged; redirects are not followed."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = f"{endpoint.rstrip('/')}/api/whoami-v2"
        self._timeout = timeout
        self._transport = transport

    async def whoami(self, token: str) -> HubUser:
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, transport=self._transport, follow_redirects=False
            ) as client:
                response = await client.get(
                    self._url,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            log.warning("namespaces.hub_unreachable", error=type(exc).__name__)
            raise NamespaceError(
                "hf_unreachable",
                "Hugging Face could not be reached to check the token; nothing was linked.",
                status=502,
            ) from None
        if response.status_code in (401, 403):
            raise NamespaceError(
                "hf_token_invalid", "Hugging Face did not accept this token; nothing was linked."
            )
        if response.status_code != 200:
            log.warning("namespaces.hub_refused", status=response.status_code)
            raise NamespaceError(
                "hf_unavailable",
                f"Hugging Face answered HTTP {response.status_code} when asked whose the token "
                "is; nothing was linked. Try again later.",
                status=502,
            )
        return _hub_user(response)


def _hub_user(response: httpx.Response) -> HubUser:
    try:
        body: Any = response.json()
        name, kind = body["name"], body.get("type", "user")
        role = ((body.get("auth") or {}).get("accessToken") or {}).get("role")
    except (ValueError, KeyError, TypeError, AttributeError):
        name = kind = role = None
    if not isinstance(name, str) or not isinstance(kind, str):
        log.warning("namespaces.hub_unexpected_answer")
        raise NamespaceError(
            "hf_unexpected_answer",
            "Hugging Face's answer did not name the token's user; nothing was linked.",
            status=502,
        )
    return HubUser(name=name, kind=kind, role=role if isinstance(role, str) else None)
