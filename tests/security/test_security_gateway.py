"""The gateway answers for itself only in the services' JSON envelope (the review's gateway
findings), on the running stack: a 48 MB JSON body to POST /api/finetune/jobs was a 502 (job-api
closed the connection mid-body), now nginx's 413 `payload_too_large`; TRACE, which nginx refuses
itself, was an HTML 405 without `Allow`, now the JSON 405 with the `Allow` the service behind the
route gives, on every route of every service (their OpenAPI documents, read through the gateway,
list them)."""

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from security_stack import SERVICES, SecurityStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

JOB_API_LIMIT = 1 << 20


@pytest.fixture
async def gateway(stack: SecurityStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=120) as http:
        yield http


def _json_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


async def test_a_48_mb_json_body_is_a_413_not_a_502(
    stack: SecurityStack, gateway: httpx.AsyncClient
) -> None:
    headers = {**stack.headers("alice"), "Content-Type": "application/json"}
    huge = b'{"job_type": "embedding", "base_model": "' + b"x" * (48 << 20) + b'"}'

    error = _json_error(
        await gateway.post("/api/finetune/jobs", content=huge, headers=headers),
        413,
        "payload_too_large",
    )
    assert f"limit of {JOB_API_LIMIT} bytes" in error["message"]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 1 << 20):
            yield huge[start : start + (1 << 20)]

    # Without a Content-Length (chunked): refused once the limit is read.
    _json_error(
        await gateway.post("/api/finetune/jobs", content=chunks(), headers=headers),
        413,
        "payload_too_large",
    )
    # Without a token either: the limit comes before anything else.
    _json_error(
        await gateway.post(
            "/api/finetune/jobs", content=huge, headers={"Content-Type": "application/json"}
        ),
        413,
        "payload_too_large",
    )
    # The gateway and job-api are fine afterwards.
    r = await gateway.get("/api/finetune/jobs", headers=stack.headers("alice"))
    assert r.status_code == 200, r.text


def _instance(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)


async def _routes(gateway: httpx.AsyncClient) -> dict[str, list[tuple[str, str]]]:
    """Per service: (path through the gateway, the same path at the service itself)."""
    routes: dict[str, list[tuple[str, str]]] = {}
    for service in SERVICES:
        r = await gateway.get(f"/openapi/{service}.json")
        assert r.status_code == 200, r.text
        paths = sorted(r.json()["paths"])
        assert paths, service
        routes[service] = [(p, p) for p in paths]
        routes[service].append((f"/openapi/{service}.json", "/openapi.json"))
    # job-api's interactive docs go through the gateway too.
    routes["job-api"] += [(p, p) for p in ("/docs", "/openapi.json")]
    return routes


async def test_trace_on_every_route_is_the_json_405_with_the_services_allow(
    stack: SecurityStack, gateway: httpx.AsyncClient
) -> None:
    checked = 0
    for service, routes in (await _routes(gateway)).items():
        async with httpx.AsyncClient(base_url=stack.direct_url(service), timeout=30) as direct:
            for through, own_path in routes:
                path = _instance(through)
                own = await direct.request("TRACE", path if own_path == through else own_path)
                assert own.status_code == 405, (service, path, own.text)
                r = await gateway.request("TRACE", path)
                error = _json_error(r, 405, "method_not_allowed")
                assert r.headers["allow"] == own.headers["allow"], (service, through)
                assert error["message"] == f"TRACE is not allowed here; use {r.headers['allow']}."
                assert r.headers["x-request-id"]
                checked += 1
    assert checked >= 25, checked
    for path, allow in (("/", "GET, HEAD"), ("/finetune/x", "GET, HEAD"), ("/healthz", "GET")):
        r = await gateway.request("TRACE", path)
        _json_error(r, 405, "method_not_allowed")
        assert r.headers["allow"] == allow
