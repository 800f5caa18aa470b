"""How ftd_test_deps chooses between containers and local stand-ins, against a stand-in engine: an
HTTP server on a unix socket answering the two calls of the Docker API the choice makes."""

import http.server
import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ftd_test_deps import IMAGES, choose

PODMAN_VERSION = {
    "Version": "4.3.1",
    "ApiVersion": "1.41",
    "MinAPIVersion": "1.24",
    "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}],
}


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    images: frozenset[str] = frozenset()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Engine

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path.endswith("/version"):
            self._answer(200, PODMAN_VERSION)
        elif "/images/" in path and path.endswith("/json"):
            name = path.split("/images/", 1)[1].removesuffix("/json")
            if name in self.server.images:
                self._answer(200, {"Id": "sha256:" + "0" * 64, "RepoTags": [name]})
            else:
                self._answer(404, {"message": f"{name}: image not known"})
        else:
            self._answer(404, {"message": "not here"})

    def address_string(self) -> str:  # a unix socket has no client address
        return "engine-client"

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Engine]:
    server = _Engine(str(tmp_path / "engine.sock"), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'engine.sock'}")
    yield server
    server.shutdown()
    server.server_close()


def test_auto_takes_containers_when_the_engine_answers_and_has_both_images(
    engine: _Engine,
) -> None:
    engine.images = frozenset(IMAGES)
    choice = choose("auto")
    assert choice.mode == "containers"
    assert choice.docker_host is not None
    assert choice.docker_host.endswith("engine.sock")
    assert "Podman Engine 4.3.1" in choice.reason


def test_auto_falls_back_to_local_and_names_the_missing_image(engine: _Engine) -> None:
    engine.images = frozenset(IMAGES[:1])
    choice = choose("auto")
    assert choice.mode == "local"
    assert choice.docker_host is None
    assert IMAGES[1] in choice.reason
    assert IMAGES[0] not in choice.reason


def test_auto_falls_back_to_local_when_no_engine_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'nobody-listens.sock'}")
    choice = choose("auto")
    assert choice.mode == "local"
    assert "nobody-listens.sock" in choice.reason


def test_containers_asked_for_without_an_engine_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'nobody-listens.sock'}")
    with pytest.raises(pytest.UsageError, match=r"nobody-listens\.sock"):
        choose("containers")


def test_local_asked_for_asks_no_engine(engine: _Engine) -> None:
    engine.images = frozenset(IMAGES)
    assert choose("local").mode == "local"
