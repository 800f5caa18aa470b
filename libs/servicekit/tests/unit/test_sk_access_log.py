"""The access log records method, path, status and duration, never the query string."""

from fastapi import FastAPI
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from servicekit.access_log import AccessLogMiddleware


def make_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(AccessLogMiddleware)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def test_request_is_logged_without_its_query_string() -> None:
    with capture_logs() as logs, TestClient(make_app()) as client:
        response = client.get("/items/7", params={"access_token": "secret-token-value"})
    assert response.status_code == 200
    [entry] = [e for e in logs if e["event"] == "http.request"]
    assert entry["method"] == "GET"
    assert entry["path"] == "/items/7"
    assert entry["status"] == 200
    assert entry["duration_ms"] >= 0
    assert "secret-token-value" not in repr(logs)


def test_error_status_is_logged() -> None:
    with capture_logs() as logs, TestClient(make_app()) as client:
        response = client.get("/items/not-a-number")
    assert response.status_code == 422
    assert [e["status"] for e in logs if e["event"] == "http.request"] == [422]
