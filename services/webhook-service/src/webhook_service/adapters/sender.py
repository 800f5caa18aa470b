"""Sending one signed delivery over HTTP: POST, no redirects followed, one deadline, and netguard's
connect-time check (the host's resolved addresses must be public) on every connection.

Signatures follow Standard Webhooks (https://www.standardwebhooks.com): headers `webhook-id`,
`webhook-timestamp` (this attempt's time, so a receiver's tolerance window holds on retries) and
`webhook-signature` = `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the
base64-decoded `whsec_` secret, computed by the `standardwebhooks` package.
"""

import asyncio
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook as Signer

from netguard import GuardedHttp, GuardError, Resolver, guarded_http
from webhook_service.domain.deliveries import Outcome, outcome_of_status

USER_AGENT = "finetune-dispatcher-webhooks/1"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def signed_headers(secret: str, message_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of `body` sent as `message_id` at `now`."""
    timestamp = datetime.fromtimestamp(int(now.timestamp()), tz=UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Signer(secret).sign(message_id, timestamp, body),
    }


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


class HttpSender(GuardedHttp):
    """`allowed_hosts`: the operator's exceptions to the address rules; `allow_loopback` adds
    this machine's loopback (development and tests)."""

    def __init__(
        self,
        *,
        timeout: float,
        allowed_hosts: Iterable[str] = (),
        allow_loopback: bool = False,
        resolver: Resolver | None = None,
    ) -> None:
        self._timeout = timeout
        hosts = (*allowed_hosts, *(LOOPBACK_HOSTS if allow_loopback else ()))
        self._client = guarded_http(
            allowed_hosts=hosts,
            resolver=resolver,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
        )

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        """One attempt. Never raises for what the receiver or the network did: the outcome says
        it (an error names the kind of failure, never what the receiver sent back)."""
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            async with asyncio.timeout(self._timeout):
                async with self._client.stream(
                    "POST",
                    url,
                    content=body,
                    headers={**headers, "Content-Type": "application/json"},
                ) as response:
                    return outcome_of_status(
                        response.status_code, took(), _retry_after(response.headers)
                    )
        except GuardError as exc:
            return Outcome(None, f"refused: {exc}", retryable=False, duration_ms=took())
        except (TimeoutError, httpx.TimeoutException):
            return Outcome(
                None, f"timed out after {self._timeout:g} s", retryable=True, duration_ms=took()
            )
        except httpx.TransportError as exc:
            return Outcome(
                None,
                f"connection failed ({type(exc).__name__})",
                retryable=True,
                duration_ms=took(),
            )
        except httpx.InvalidURL:
            return Outcome(None, "the URL is not valid", retryable=False, duration_ms=took())
