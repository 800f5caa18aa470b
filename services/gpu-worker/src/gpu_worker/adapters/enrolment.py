"""The worker's credential: kept by `ftd-worker login`, presented to the platform (`GET
/api/workers/me`), which answers who the worker is, its pool and how to reach the broker."""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from contracts.credentials import parse_token


class CredentialRefused(Exception):
    """The platform does not accept the token (unknown or revoked): retrying cannot help."""


class NoBrokerUrl(Exception):
    """Neither the platform nor this worker's settings name a broker: a configuration error."""


class PlatformUnreachable(Exception):
    """The platform did not answer (yet): worth retrying."""


@dataclass(frozen=True)
class Enrolment:
    worker_id: str
    name: str
    pool: str
    broker_url: str | None
    broker_username: str | None
    broker_prefix: str
    lease_seconds: float


def save_credentials(path: Path, *, api_url: str, token: str) -> None:
    """Write the token where only this user can read it (0600, folder 0700)."""
    if parse_token(token) is None:
        raise ValueError("that is not a worker token (ftdw_<id>_<secret>)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"api_url": api_url, "token": token}, out)


def load_credentials(path: Path) -> tuple[str, str] | None:
    """(api_url, token) saved by `ftd-worker login`, or None."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get("token"), str):
        return None
    return str(saved.get("api_url") or ""), saved["token"]


async def who_am_i(api_url: str, token: str, *, timeout: float = 15) -> Enrolment:
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(
                f"{api_url.rstrip('/')}/api/workers/me",
                headers={"Authorization": f"Bearer {token}"},
            )
    except httpx.HTTPError as exc:
        raise PlatformUnreachable(f"{api_url} did not answer: {exc!r}") from exc
    if response.status_code in (401, 403):
        raise CredentialRefused(
            "the platform refused this worker token (revoked, or not a worker token): enroll "
            "the worker again (Workers page, or POST /api/workers)"
        )
    if response.status_code != 200:
        raise PlatformUnreachable(f"{api_url} answered {response.status_code}")
    data = response.json()["data"]
    return Enrolment(
        worker_id=data["worker"]["id"].replace("-", ""),
        name=data["worker"]["name"],
        pool=data["pool"],
        broker_url=data["broker"]["url"],
        broker_username=data["broker"]["username"],
        broker_prefix=data["broker"]["prefix"],
        lease_seconds=float(data["lease_seconds"]),
    )


def broker_url(enrolment: Enrolment, token: str, *, override: str | None) -> str:
    """The URL to dial: the configured one or the platform's, with the worker's own broker user
    and its token as the password when the platform made one."""
    url = override or enrolment.broker_url
    if not url:
        raise NoBrokerUrl(
            "the platform gives no broker URL for workers: set FTD_WORKER_AMQP_URL (or ask the "
            "operator to set FTD_WORKER_AMQP_URL_PUBLIC)"
        )
    if enrolment.broker_username is None:
        return url
    # A cluster's URLs (comma-separated): the worker's user on each node.
    return ",".join(
        _with_user(one.strip(), enrolment.broker_username, token) for one in url.split(",")
    )


def _with_user(url: str, username: str, token: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{quote(username, safe='')}:{quote(token, safe='')}@{host}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
