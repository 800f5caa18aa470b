"""Broker identities of enrolled workers, through RabbitMQ's management API.

Each enrolled worker gets a broker user of its own (`ftdw-<worker id>`, its password the worker's
token, stored by the broker as a salted hash that job-api computes) whose permissions allow what
a worker of its pool needs and nothing else:

- configure: only the queues it names for itself (`ftdw.<id>.*`: its reply and cancel queues);
- write: its reports (finetune.worker), claims (finetune.claims) and its own queues;
- read: its pool's work queues (the shared `finetune.work.*`, or `finetune.pool.<pool key>.*`),
  finetune.events (to bind its cancel queue), its own queues;
- topic permissions narrow the exchanges to the keys it may use: the four report keys, the claim
  key, and `job.cancel_requested.<job id>` bindings.

So it cannot read, purge or `basic.get` another pool's queues, declare anything shared, hear other
workers' reports or publish anything but its reports and claims. Deleting the user closes its
connections at once (RabbitMQ: CONNECTION_FORCED), which is how revocation takes effect.
"""

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import structlog

from contracts.routing import CLAIM_KEY, SHARED_POOL, WORKER_REPORT_KEYS, BrokerNames
from messaging.broker import broker_urls

log = structlog.get_logger(__name__)


class BrokerAdminError(Exception):
    """The management API refused or could not be reached: an infrastructure failure."""


def broker_user(worker_id: str) -> str:
    return f"ftdw-{worker_id}"


def rabbit_password_hash(password: str, *, salt: bytes | None = None) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt + sha256(salt + password)), so the
    password itself never crosses the management API."""
    salt = salt if salt is not None else os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def worker_permissions(names: BrokerNames, worker_id: str, pool: str) -> dict[str, str]:
    prefix = re.escape(names.prefix)
    own = re.escape(names.worker_queue_prefix(worker_id)) + ".+"
    offers = (
        f"{prefix}finetune\\.work\\..+"
        if pool == SHARED_POOL
        else re.escape(names.pool_queue_prefix(pool)) + ".+"
    )
    return {
        "configure": f"^{own}$",
        "write": f"^({re.escape(names.worker_exchange)}|{re.escape(names.claims_exchange)}|{own})$",
        "read": f"^({offers}|{re.escape(names.events_exchange)}|{own})$",
    }


def worker_topic_permissions(names: BrokerNames) -> list[dict[str, str]]:
    reports = "|".join(re.escape(key) for key in WORKER_REPORT_KEYS)
    uuid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    return [
        {"exchange": names.worker_exchange, "write": f"^({reports})$", "read": "^$"},
        {"exchange": names.claims_exchange, "write": f"^{re.escape(CLAIM_KEY)}$", "read": "^$"},
        {
            "exchange": names.events_exchange,
            "write": "^$",
            "read": f"^job\\.cancel_requested\\.{uuid}$",
        },
    ]


def vhost_of(amqp_url: str) -> str:
    """The virtual host a broker setting names: that of its first URL (a cluster's URLs,
    comma-separated, all name the same one)."""
    path = urlsplit(broker_urls(amqp_url)[0]).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def without_credentials(amqp_url: str, *, keep_query: bool) -> str:
    """A broker setting (one URL or a cluster's, comma-separated) with no user or password in
    any of its URLs (and without their query options unless `keep_query`), comma-separated."""

    def bare(url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"  # an IPv6 address
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query if keep_query else "", ""))

    return ",".join(bare(url) for url in broker_urls(amqp_url))


@dataclass(frozen=True)
class BrokerAdmin:
    """`url`: the management API root with its credentials (http://user:password@host:15672)."""

    url: str
    vhost: str
    names: BrokerNames
    timeout: float = 10.0

    def _client(self) -> httpx.AsyncClient:
        parts = urlsplit(self.url)
        auth = (unquote(parts.username or ""), unquote(parts.password or ""))
        netloc = parts.hostname or ""
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/api", "", ""))
        return httpx.AsyncClient(base_url=base, auth=auth, timeout=self.timeout, trust_env=False)

    async def _call(self, client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> None:
        try:
            response = await client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise BrokerAdminError(f"the broker's management API is unreachable: {exc!r}") from exc
        if response.status_code >= 400 and not (method == "DELETE" and response.status_code == 404):
            raise BrokerAdminError(
                f"the broker's management API answered {response.status_code} to {method} "
                f"{path.split('/')[1] if '/' in path else path}"
            )

    async def provision(self, *, worker_id: str, pool: str, token: str) -> str:
        """Create (or reset) the worker's broker user with its pool's permissions."""
        user = broker_user(worker_id)
        vhost = quote(self.vhost, safe="")
        async with self._client() as client:
            await self._call(
                client,
                "PUT",
                f"/users/{user}",
                json={
                    "password_hash": rabbit_password_hash(token),
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": "",
                },
            )
            await self._call(
                client,
                "PUT",
                f"/permissions/{vhost}/{user}",
                json=worker_permissions(self.names, worker_id, pool),
            )
            for topic in worker_topic_permissions(self.names):
                await self._call(client, "PUT", f"/topic-permissions/{vhost}/{user}", json=topic)
        log.info("broker.worker_user_provisioned", worker_id=worker_id, pool=pool)
        return user

    async def remove(self, *, worker_id: str) -> None:
        """Delete the worker's broker user (its connections close at once) and any queue it left
        under its own names (durable ones outlive the connection)."""
        user = broker_user(worker_id)
        vhost = quote(self.vhost, safe="")
        async with self._client() as client:
            await self._call(client, "DELETE", f"/users/{user}")
            own = re.escape(self.names.worker_queue_prefix(worker_id))
            try:
                listed = await client.get(
                    f"/queues/{vhost}",
                    params={"name": f"^{own}", "use_regex": "true", "columns": "name"},
                )
            except httpx.HTTPError as exc:
                raise BrokerAdminError(f"listing the worker's queues failed: {exc!r}") from exc
            if listed.status_code == 200:
                body = listed.json()
                items = body.get("items", body) if isinstance(body, dict) else body
                for queue in items:
                    name = queue.get("name", "")
                    if name.startswith(self.names.worker_queue_prefix(worker_id)):
                        await self._call(
                            client, "DELETE", f"/queues/{vhost}/{quote(name, safe='')}"
                        )
        log.info("broker.worker_user_removed", worker_id=worker_id)
