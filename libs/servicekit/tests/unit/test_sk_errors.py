import uuid
from typing import Any

import pytest
import structlog
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel

from servicekit.errors import ApiError, error_body, install_error_handlers

LEAKY = "postgresql://svc:hunter2@db/ftd"


class JobIn(BaseModel):
    base_model: str
    learning_rate: float


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/jobs")
    def submit(job: JobIn) -> dict[str, Any]:
        return {"data": job.model_dump()}

    @app.get("/jobs/{job_id}")
    def get(job_id: str) -> dict[str, Any]:
        raise ApiError(404, "job_not_found", f"No job {job_id}.", {"job_id": job_id})

    @app.get("/jobs/{job_id}/cancel")
    def cancel(job_id: uuid.UUID) -> None:
        raise ApiError(409, "job_finished", "The job already finished.", {"job_id": job_id})

    @app.get("/private")
    def private() -> None:
        raise HTTPException(401, "Sign in first.", headers={"WWW-Authenticate": "Bearer"})

    @app.get("/structured")
    def structured() -> None:
        raise HTTPException(409, {"reason": "busy"})

    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPException(418)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"could not connect to {LEAKY}")

    return app


@pytest.fixture
def client() -> TestClient:
    # The 500 handler answers, then Starlette re-raises for the server to log; don't fail on it.
    return TestClient(_app(), raise_server_exceptions=False)


def test_error_body_shape() -> None:
    assert error_body("conflict", "Busy.") == {
        "error": {"code": "conflict", "message": "Busy.", "details": None}
    }


def test_api_error_renders_the_envelope(client: TestClient) -> None:
    response = client.get("/jobs/j-1")

    assert response.status_code == 404
    assert response.json() == error_body("job_not_found", "No job j-1.", {"job_id": "j-1"})


def test_api_error_details_are_json_encoded(client: TestClient) -> None:
    job_id = uuid.uuid4()

    response = client.get(f"/jobs/{job_id}/cancel")

    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"job_id": str(job_id)}


def test_validation_error_summarises_without_echoing_input(client: TestClient) -> None:
    response = client.post("/jobs", json={"learning_rate": "sk-live-do-not-echo"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == (
        "Request validation failed: body.base_model: Field required (and 1 more error)"
    )
    assert error["details"] == [
        {"loc": ["body", "base_model"], "message": "Field required", "type": "missing"},
        {
            "loc": ["body", "learning_rate"],
            "message": "Input should be a valid number, unable to parse string as a number",
            "type": "float_parsing",
        },
    ]
    assert "sk-live-do-not-echo" not in response.text


def test_single_validation_error_message(client: TestClient) -> None:
    response = client.post("/jobs", json={"learning_rate": 0.1})

    assert response.json()["error"]["message"] == (
        "Request validation failed: body.base_model: Field required"
    )


def test_unknown_route_is_not_found_envelope(client: TestClient) -> None:
    response = client.get("/nope")

    assert response.status_code == 404
    assert response.json() == error_body("not_found", "Not Found")


def test_wrong_method_is_method_not_allowed(client: TestClient) -> None:
    response = client.delete("/jobs")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "allow" in response.headers


def test_http_exception_keeps_detail_and_headers(client: TestClient) -> None:
    response = client.get("/private")

    assert response.status_code == 401
    assert response.json() == error_body("unauthorized", "Sign in first.")
    assert response.headers["www-authenticate"] == "Bearer"


def test_structured_http_detail_moves_to_details(client: TestClient) -> None:
    response = client.get("/structured")

    assert response.json() == error_body("conflict", "Conflict", {"reason": "busy"})


def test_other_status_is_http_error(client: TestClient) -> None:
    response = client.get("/teapot")

    assert response.status_code == 418
    assert response.json()["error"]["code"] == "http_error"


def test_unhandled_exception_is_logged_but_not_leaked(client: TestClient) -> None:
    with structlog.testing.capture_logs() as logs:
        response = client.get("/boom")

    assert response.status_code == 500
    assert response.json() == error_body("internal_error", "An unexpected error occurred.")
    assert "hunter2" not in response.text
    assert [entry["event"] for entry in logs] == ["http.unhandled_error"]
    assert logs[0]["log_level"] == "error"
    assert logs[0]["path"] == "/boom"
