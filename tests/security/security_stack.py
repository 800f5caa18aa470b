"""The whole platform as the security suite attacks it (importable: pytest's `pythonpath` lists
this folder).

One stack for the session (tests/e2e/ftd_stack.py's `full_stack`: the nginx gateway, job-api,
data-service, registry-service and an enrolled CPU worker with its own broker user), set up so
that every finding can be tried for real:

- external training data URLs are on (FTD_ENV=development) and the operator's allow-list names
  one host, `ALLOWED_HOST` (127.0.0.2, a loopback address the worker may fetch from only because
  it is listed), whose certificate a throwaway CA signed: the worker trusts that CA
  (FTD_WORKER_DATA_CA_FILE) besides the public ones. Downloads from a URL are capped at
  `MAX_EXTERNAL_BYTES`;
- a stand-in Hugging Face Hub on a loopback port (`StandInHub`) answers job-api's whoami (linking
  an account) and the registry's repository deletes, and records what it was asked.
"""

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from ftd_stack import Stack, full_stack, wait_http
from netguard_testing import ThrowawayCa, make_ca

from servicekit.auth import mint_token

ALLOWED_HOST = "127.0.0.2"
MAX_EXTERNAL_BYTES = 256 << 10
HUB_TOKEN = "hf_platform_token_for_deletes_0123456789"
# The catalogue's offline model (an installed package): the CPU worker trains it without a download.
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SERVICES = ("job-api", "data-service", "registry-service")


@dataclass
class HubRequest:
    method: str
    path: str
    authorization: str | None
    body: bytes


class StandInHub:
    """The Hub's `GET /api/whoami-v2` (every token is a write token of a user named after it) and
    `DELETE /api/repos/delete` (with the platform's token only), on a loopback port."""

    def __init__(self) -> None:
        self.requests: list[HubRequest] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> HubRequest:
                length = int(self.headers.get("Content-Length") or 0)
                seen = HubRequest(
                    self.command,
                    self.path.split("?", 1)[0],
                    self.headers.get("Authorization"),
                    self.rfile.read(length) if length else b"",
                )
                hub.requests.append(seen)
                return seen

            def do_GET(self) -> None:
                seen = self._record()
                token = (seen.authorization or "").removeprefix("Bearer ")
                if seen.path != "/api/whoami-v2" or not token:
                    self._answer(404 if token else 401, {"error": "not found"})
                    return
                name = "hf-" + hashlib.sha256(token.encode()).hexdigest()[:10]
                self._answer(
                    200,
                    {
                        "type": "user",
                        "name": name,
                        "auth": {"type": "access_token", "accessToken": {"role": "write"}},
                    },
                )

            def do_DELETE(self) -> None:
                seen = self._record()
                if seen.path != "/api/repos/delete":
                    self._answer(404, {"error": "not found"})
                elif seen.authorization != f"Bearer {HUB_TOKEN}":
                    self._answer(401, {"error": "unauthorized"})
                else:
                    self._answer(200, {})

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def deletes(self) -> list[dict[str, Any]]:
        """The repository deletes the Hub was asked for (their JSON bodies)."""
        return [json.loads(r.body) for r in self.requests if r.method == "DELETE"]

    def __enter__(self) -> "StandInHub":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class SecurityStack:
    stack: Stack
    hub: StandInHub
    ca: ThrowawayCa
    # The extra environment each restarted service runs with (beyond the stack's own).
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    @property
    def root(self) -> Path:
        return self.stack.root

    def token(self, sub: str, **claims: Any) -> str:
        return mint_token(self.stack.jwt_secret, sub, ttl_seconds=3600, **claims)

    def headers(self, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub)}"}

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.admin_token()}"}

    def port(self, service: str) -> int:
        """The port `service` listens on itself (behind the gateway)."""
        args = list(self.stack.processes[service].args)  # type: ignore[arg-type]
        return int(args[args.index("--port") + 1])

    def direct_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    def stop(self, service: str) -> list[str]:
        """Stop a service (SIGTERM to its process group); returns its command line."""
        process = self.stack.processes.pop(service)
        args = [str(a) for a in process.args]  # type: ignore[union-attr]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return args

    def start(self, service: str, args: list[str], **env: str) -> None:
        """Start a service again on its port with the stack's environment, `env` added, and wait
        until it is ready."""
        assert self.stack.start_process is not None
        self.service_env[service] = env
        self.stack.start_process(service, args, env)
        port = args[args.index("--port") + 1]
        wait_http(f"http://127.0.0.1:{port}/readyz", self.stack.processes[service], service)

    def restart(self, service: str, **env: str) -> None:
        self.start(service, self.stop(service), **env)

    @contextlib.contextmanager
    def restarted(self, service: str, **env: str) -> Iterator[None]:
        """The service runs with `env` added inside the block, as it ran before afterwards."""
        before = self.service_env.get(service, {})
        self.restart(service, **{**before, **env})
        try:
            yield
        finally:
            self.restart(service, **before)

    def log(self, name: str) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def gateway_logs(self) -> str:
        folder = self.root / "gateway"
        return "\n".join(
            (folder / name).read_text(errors="replace")
            for name in ("access.log", "error.log")
            if (folder / name).exists()
        )


@contextlib.contextmanager
def security_stack() -> Iterator[SecurityStack]:
    # nginx's workers run as `nobody` when the suite runs as root: they buffer request bodies in
    # the gateway's folder, which must be reachable (pytest's own tmp folders are 0700).
    root = Path(tempfile.mkdtemp(prefix="ftd-security-"))
    root.chmod(0o755)
    try:
        ca = make_ca(root / "ca", [ALLOWED_HOST])
        ca_file = root / "ca" / "ca.pem"
        ca_file.write_text(ca.ca_pem)
        with StandInHub() as hub:
            extra = {
                # The operator's own file server: allowed at creation (job-api) and at connect
                # time (the worker), and trusted by the worker with the operator's CA.
                "FTD_DATA_URL_ALLOWED_HOSTS": ALLOWED_HOST,
                "FTD_WORKER_DATA_CA_FILE": str(ca_file),
                "FTD_MAX_EXTERNAL_DATA_BYTES": str(MAX_EXTERNAL_BYTES),
                "FTD_HF_ENDPOINT": hub.url,
                "REGISTRY_SERVICE_HF_TOKEN": HUB_TOKEN,
                "REGISTRY_SERVICE_HF_ENDPOINT": hub.url,
            }
            with full_stack(root, extra_env=extra) as stack:
                running = SecurityStack(stack=stack, hub=hub, ca=ca)
                # huggingface_hub refuses every request in offline mode (the stack's default),
                # the stand-in Hub's included: the registry alone runs online.
                running.restart("registry-service", HF_HUB_OFFLINE="0")
                yield running
    finally:
        shutil.rmtree(root, ignore_errors=True)


def client(stack: SecurityStack, sub: str | None = None, **kw: Any) -> httpx.AsyncClient:
    """An async client of the gateway, as user `sub` (or anonymous)."""
    headers = stack.headers(sub) if sub is not None else {}
    return httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=60, **kw)
