"""The app builder's routes and middleware, without a database or broker: the lifespan is not
run (TestClient outside a `with` block), so only what needs no platform answers."""

from typing import Any

import pytest
import structlog
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from pydantic import SecretStr

from servicekit.app import build_app
from servicekit.config import PlatformSettings
from servicekit.domain import DomainError
from servicekit.errors import ApiError
from servicekit.service import Platform, Service

LIMIT = 1024


class QuotaExceeded(DomainError):
    code = "quota_exceeded"
    status = 429

    def __init__(self, used: int) -> None:
        super().__init__(f"You have used {used} of your 3 slots.")
        self.details = {"used": used, "limit": 3}


class Conflicting(DomainError):
    """A subclass that sets nothing: the base's 409 and code."""


router = APIRouter()


@router.get("/quota")
async def quota() -> None:
    raise QuotaExceeded(3)


@router.get("/conflict")
async def conflict() -> None:
    raise Conflicting("The thing is busy.")


@router.get("/api-error")
async def api_error() -> None:
    raise ApiError(404, "thing_not_found", "No such thing.")


@router.get("/request-id")
async def request_id(request: Request) -> dict[str, Any]:
    bound = structlog.contextvars.get_contextvars()
    return {"bound": bound.get("request_id"), "state": request.state.request_id}


@router.post("/echo")
async def echo(request: Request) -> dict[str, int]:
    return {"size": len(await request.body())}


async def _never_started(_platform: Platform) -> Any:
    raise AssertionError("the lifespan does not run in these tests")


def _settings() -> PlatformSettings:
    return PlatformSettings(
        database_url="postgresql://svc:pw@127.0.0.1:1/none",
        db_password=SecretStr("pw"),
        jwt_secret=SecretStr("unit-test-secret-0123456789abcdef"),
        access_log=False,
    )


@pytest.fixture(scope="module")
def client() -> TestClient:
    service: Service[Any] = Service(
        name="sk-test",
        description="A service of the builder's tests.",
        routers=[router],
        start=_never_started,
        max_body_bytes=LIMIT,
        json_body_exempt=(),
    )
    return TestClient(build_app(service, _settings()))


def test_a_domain_error_answers_with_its_status_code_and_details(client: TestClient) -> None:
    response = client.get("/quota")
    assert response.status_code == 429
    assert response.json() == {
        "error": {
            "code": "quota_exceeded",
            "message": "You have used 3 of your 3 slots.",
            "details": {"used": 3, "limit": 3},
        }
    }


def test_a_domain_error_without_its_own_status_is_a_conflict(client: TestClient) -> None:
    response = client.get("/conflict")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "domain_error",
        "message": "The thing is busy.",
        "details": None,
    }


def test_api_errors_and_unknown_routes_keep_the_envelope(client: TestClient) -> None:
    assert client.get("/api-error").json()["error"]["code"] == "thing_not_found"
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_the_request_id_is_bound_for_logs_and_returned(client: TestClient) -> None:
    sent = client.get("/request-id", headers={"X-Request-Id": "gw-1234.abc"})
    assert sent.headers["x-request-id"] == "gw-1234.abc"
    assert sent.json() == {"bound": "gw-1234.abc", "state": "gw-1234.abc"}

    minted = client.get("/request-id")
    rid = minted.headers["x-request-id"]
    assert len(rid) == 32
    assert minted.json() == {"bound": rid, "state": rid}


def test_an_unsafe_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/request-id", headers={"X-Request-Id": "a b\tc"})
    assert response.headers["x-request-id"] != "a b\tc"
    assert response.json()["bound"] == response.headers["x-request-id"]


def test_a_body_over_the_limit_is_refused_before_the_route(client: TestClient) -> None:
    fits = client.post(
        "/echo", content=b"[" + b"0," * 500 + b"0]", headers={"content-type": "application/json"}
    )
    assert fits.status_code == 200, fits.text

    declared = client.post(
        "/echo", content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Any:
        for _ in range(4):
            yield b"x" * 400

    streamed = client.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    response = client.post("/echo", content=b"a=1", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    # Read whole before the answer: the connection may serve the next request.
    assert "connection" not in response.headers

    def chunks() -> Any:
        for _ in range(4):
            yield b"x" * 400

    # Past the body limit while it is read: still the 415, on a connection that closes.
    over = client.post("/echo", content=chunks(), headers={"content-type": "text/plain"})
    assert over.status_code == 415
    assert over.headers["connection"] == "close"


def test_probes_metrics_and_offline_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    # No platform (the lifespan has not run): not ready.
    assert client.get("/readyz").status_code == 503
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "python_gc_objects_collected_total" in metrics.text
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    document = client.get("/openapi.json").json()
    assert "/quota" in document["paths"]
    assert "/healthz" not in document["paths"]
