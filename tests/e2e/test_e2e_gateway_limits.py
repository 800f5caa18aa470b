"""The gateway (a real nginx rendered by scripts/gateway.sh, before job-api, data-service,
registry-service, model-server and webhook-service) answers for itself only in the services' JSON
envelope:

- each route refuses a body over its own service's limit with 413 `payload_too_large` naming that
  limit (job-api's 1 MiB for its routes and /v1/fine_tuning/, model-server's 1 MiB,
  webhook-service's 64 KiB, the upload's own for the upload and /v1/files), never a 502 from a
  service closing mid-body;
- a method nginx refuses itself (TRACE) is 405 `method_not_allowed` with the `Allow` the service
  behind the route gives for the same path, checked for every route of every service;
- a data ticket (sent in `Authorization`) or a stream's `access_token` never reaches its access or
  error log, even when the upstream fails; a ticket in a download URL is refused at the door.
"""

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from data_service_testing import (
    ADMIN_DSN,
    AMQP_URL,
    JWT_SECRET,
    TICKET_SECRET,
    classifier_csv,
    eventually,
    free_socket,
    served,
    user_headers,
)
from fastapi import FastAPI

import data_service.entrypoints.cli as data_cli
import job_api.entrypoints.cli as job_cli
import model_server.entrypoints.cli as model_server_cli
import registry_service.entrypoints.cli as registry_cli
import webhook_service.entrypoints.cli as webhook_cli
from contracts.routing import BrokerNames
from data_service.config import Settings as DataSettings
from data_service.entrypoints.app import create_app as create_data_app
from data_service.entrypoints.workers import queue_specs as data_queues
from job_api.config import Settings as JobSettings
from job_api.entrypoints.app import create_app as create_job_app
from job_api.entrypoints.workers import queue_specs as job_queues
from messaging.broker import Broker
from messaging.topology import delete_topology
from model_server.config import Settings as ModelServerSettings
from model_server.entrypoints.app import MAX_BODY_BYTES as MODEL_SERVER_LIMIT
from model_server.entrypoints.app import create_app as create_model_server_app
from model_server.entrypoints.workers import queue_specs as model_server_queues
from registry_service.config import Settings as RegistrySettings
from registry_service.entrypoints.app import create_app as create_registry_app
from registry_service.entrypoints.workers import queue_specs as registry_queues
from servicekit.db import bootstrap_service_database, drop_database, with_credentials
from servicekit.tickets import mint_data_ticket
from webhook_service.config import Settings as WebhookSettings
from webhook_service.entrypoints.app import MAX_BODY_BYTES as WEBHOOK_LIMIT
from webhook_service.entrypoints.app import create_app as create_webhook_app
from webhook_service.entrypoints.workers import queue_specs as webhook_queues

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
JOB_API_LIMIT = 1 << 20  # job-api's default JOB_API_MAX_BODY_BYTES, the gateway's default too
UPLOAD_LIMIT = 4 << 20  # small, so a refused upload is quick to send
NO_BODY_LIMIT = 64 << 10  # routes whose service takes no body: datasets, registry


@dataclass
class Stack:
    base: str
    run_dir: Path
    apps: dict[str, tuple[FastAPI, str]]  # service -> (its app, its own base URL)


def _closed_port() -> int:
    sock = free_socket()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@contextlib.contextmanager
def run_dir() -> Iterator[Path]:
    """nginx's folder (logs, body buffers), outside pytest's private tmp: nginx started as root
    buffers request bodies as `nobody`, which must reach the folder."""
    path = Path(tempfile.mkdtemp(prefix="ftd-gateway-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def gateway(run_dir: Path, upstreams: dict[str, str]) -> Iterator[str]:
    port = _closed_port()
    env = {
        **os.environ,
        "FTD_GATEWAY_PORT": str(port),
        "FTD_GATEWAY_DIR": str(run_dir),
        "DATA_SERVICE_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        **upstreams,
    }
    process = subprocess.Popen(["bash", str(ROOT / "scripts/gateway.sh")], env=env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


async def _up(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:

        async def answers() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return (await client.get("/healthz")).status_code == 200
            return False

        await eventually(answers, timeout=30)


async def _database(schema: str, migrate: Any) -> tuple[str, str]:
    name = f"ftd_e2e_gw_{schema}_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    await bootstrap_service_database(
        ADMIN_DSN, database=name, role=name, password=password, schema=schema
    )
    url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
    await asyncio.to_thread(migrate, url)
    return name, url


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("gateway-limits")
    prefix = f"g{uuid.uuid4().hex[:8]}."
    databases = [
        await _database("jobs", job_cli.migrate),
        await _database("data", data_cli.migrate),
        await _database("registry", registry_cli.migrate),
        await _database("model_server", model_server_cli.migrate),
        await _database("webhooks", webhook_cli.migrate),
    ]
    (_, job_url), (_, data_url), (_, registry_url), (_, model_server_url), (_, webhook_url) = (
        databases
    )
    common: dict[str, Any] = {
        "environment": "test",
        "amqp_url": AMQP_URL,
        "broker_prefix": prefix,
        "jwt_secret": JWT_SECRET,
        "db_password": uuid.uuid4().hex,
        "db_pool_size": 5,
        "access_log": False,
    }
    apps = {
        "job-api": create_job_app(
            JobSettings(
                **common,
                database_url=job_url,
                worker_key=f"gw-worker-key-{uuid.uuid4().hex}",
                data_ticket_secret=TICKET_SECRET,
                secrets_key=Fernet.generate_key().decode(),
                enable_offline_models=True,
            )
        ),
        "data-service": create_data_app(
            DataSettings(
                **common,
                database_url=data_url,
                data_ticket_secret=TICKET_SECRET,
                storage_dir=tmp / "datasets",
                max_upload_bytes=UPLOAD_LIMIT,
            )
        ),
        "registry-service": create_registry_app(
            RegistrySettings(**common, database_url=registry_url)
        ),
        "model-server": create_model_server_app(
            ModelServerSettings(
                **common,
                database_url=model_server_url,
                model_store_dir=tmp / "models",
                hub_downloads=False,
                device="cpu",
            )
        ),
        "webhook-service": create_webhook_app(
            WebhookSettings(
                **common,
                database_url=webhook_url,
                secrets_key=Fernet.generate_key().decode(),
                allow_http_loopback=True,
            )
        ),
    }
    try:
        async with contextlib.AsyncExitStack() as started:
            bases = {
                name: await started.enter_async_context(served(app)) for name, app in apps.items()
            }
            upstreams = {
                "FTD_JOB_API_ADDR": bases["job-api"].removeprefix("http://"),
                "FTD_DATA_SERVICE_ADDR": bases["data-service"].removeprefix("http://"),
                "FTD_REGISTRY_ADDR": bases["registry-service"].removeprefix("http://"),
                "FTD_MODEL_SERVER_ADDR": bases["model-server"].removeprefix("http://"),
                "FTD_WEBHOOK_ADDR": bases["webhook-service"].removeprefix("http://"),
                "FTD_UI_ADDR": f"127.0.0.1:{_closed_port()}",
            }
            folder = started.enter_context(run_dir())
            base = started.enter_context(gateway(folder, upstreams))
            await _up(base)
            yield Stack(base, folder, {n: (apps[n], bases[n]) for n in apps})
    finally:
        broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="e2e-gw-teardown")
        await broker.connect()
        channel = await broker.channel()
        specs = [
            *job_queues(broker),
            *data_queues(broker),
            *registry_queues(broker),
            *model_server_queues(broker),
            *webhook_queues(broker),
        ]
        with contextlib.suppress(Exception):
            await delete_topology(
                channel,
                broker.names,
                [s.name for s in specs],
                [s.exchange for s in specs if s.exchange],
            )
        await broker.close()
        for name, _ in databases:
            await drop_database(ADMIN_DSN, name, roles=[name])


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


async def test_a_body_over_the_routes_limit_is_a_json_413_naming_it(stack: Stack) -> None:
    headers = {**user_headers(), "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=stack.base, timeout=60) as client:
        # 48 MB of JSON for job-api: refused at the door, never passed on to be cut off (a 502).
        huge = b'{"job_type": "' + b"x" * (48 << 20) + b'"}'
        error = _error(
            await client.post("/api/finetune/jobs", content=huge, headers=headers),
            413,
            "payload_too_large",
        )
        assert f"limit of {JOB_API_LIMIT} bytes" in error["message"]

        # Over job-api's limit, under the upload's: once passed on, job-api stopped reading it
        # and closed the connection mid-body, which nginx answered as a 502.
        middle = b'{"job_type": "' + b"x" * (3 << 20) + b'"}'
        error = _error(
            await client.post("/api/finetune/jobs", content=middle, headers=headers),
            413,
            "payload_too_large",
        )
        assert f"limit of {JOB_API_LIMIT} bytes" in error["message"]

        # The same without a Content-Length (chunked): refused once the limit is read.
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"x" * (1 << 20)

        error = _error(
            await client.post("/api/finetune/jobs", content=chunks(), headers=headers),
            413,
            "payload_too_large",
        )
        assert f"limit of {JOB_API_LIMIT} bytes" in error["message"]

        # Under the limit the body reaches job-api, which answers for itself.
        under = b'{"job_type": "' + b"x" * (JOB_API_LIMIT - 1024) + b'"}'
        r = await client.post("/api/finetune/jobs", content=under, headers=headers)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] != "payload_too_large"

        # registry-service takes no request body: 64 KiB at most.
        deploy = f"/api/models/{uuid.uuid4()}/deploy"
        error = _error(
            await client.post(deploy, content=b"{}" + b" " * (1 << 20), headers=headers),
            413,
            "payload_too_large",
        )
        assert f"limit of {NO_BODY_LIMIT} bytes" in error["message"]
        assert (await client.post(deploy, headers=user_headers())).status_code == 404

        # model-server's JSON routes: its own 1 MiB, at the door, for /v1/ and /api/keys alike.
        for route in ("/v1/embeddings", "/v1/chat/completions", "/api/keys"):
            over = b'{"model": "' + b"x" * MODEL_SERVER_LIMIT + b'"}'
            error = _error(
                await client.post(route, content=over, headers=headers),
                413,
                "payload_too_large",
            )
            assert f"limit of {MODEL_SERVER_LIMIT} bytes" in error["message"]
        # Under it the body reaches model-server, which answers for itself (no such model).
        under = b'{"model": "none", "input": "' + b"x" * (MODEL_SERVER_LIMIT // 2) + b'"}'
        r = await client.post("/v1/embeddings", content=under, headers=headers)
        assert r.status_code in (400, 404), r.text
        assert "payload_too_large" not in r.text

        # webhook-service's routes: its own 64 KiB.
        over = b'{"url": "' + b"x" * WEBHOOK_LIMIT + b'"}'
        error = _error(
            await client.post("/api/webhooks", content=over, headers=headers),
            413,
            "payload_too_large",
        )
        assert f"limit of {WEBHOOK_LIMIT} bytes" in error["message"]
        r = await client.post("/api/webhooks", json={"url": "x" * 1000}, headers=user_headers())
        assert r.status_code == 422, r.text
        assert "payload_too_large" not in r.text

        # The OpenAI-style fine-tuning jobs are job-api's: its limit.
        over = b'{"model": "' + b"x" * JOB_API_LIMIT + b'"}'
        error = _error(
            await client.post("/v1/fine_tuning/jobs", content=over, headers=headers),
            413,
            "payload_too_large",
        )
        assert f"limit of {JOB_API_LIMIT} bytes" in error["message"]

        # The OpenAI-style files API is data-service's upload: the upload's limit, not 1 MiB.
        body = classifier_csv(60_000)
        r = await client.post(
            "/v1/files",
            headers=user_headers(),
            data={"purpose": "fine-tune"},
            files={"file": ("train.csv", body, "text/csv")},
        )
        assert r.status_code == 200, r.text
        assert r.json()["id"].startswith("file-")
        too_big = b"text,label\n" + b"a sentence,pos\n" * (UPLOAD_LIMIT // 15 + 10_000)
        r = await client.post(
            "/v1/files",
            headers=user_headers(),
            data={"purpose": "fine-tune"},
            files={"file": ("train.csv", too_big, "text/csv")},
        )
        assert r.status_code == 413, r.text

        # The upload keeps its own limit: over job-api's, under its own, it is stored.
        body = classifier_csv(60_000)
        assert JOB_API_LIMIT < len(body) < UPLOAD_LIMIT
        r = await client.post(
            "/api/finetune/upload",
            headers=user_headers(),
            files={"file": ("train.csv", body, "text/csv")},
        )
        assert r.status_code == 201, r.text
        too_big = b"text,label\n" + b"a sentence,pos\n" * (UPLOAD_LIMIT // 15 + 10_000)
        error = _error(
            await client.post(
                "/api/finetune/upload",
                headers=user_headers(),
                files={"file": ("train.csv", too_big, "text/csv")},
            ),
            413,
            "payload_too_large",
        )
        assert str(UPLOAD_LIMIT) in error["message"]


def _instance(path: str) -> str:
    """A concrete path for a route's template: every parameter a fresh UUID."""
    return re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)


# job-api's interactive docs go through the gateway too (the other services' do not).
DOCS = ("/docs", "/docs/oauth2-redirect", "/openapi.json")


def _public_paths(name: str, app: FastAPI) -> list[str]:
    """The route templates the gateway sends to this service (its OpenAPI document lists them
    all, as the service builds it now): /api/ everywhere, the OpenAI-style /v1/ of model-server,
    data-service (/v1/files) and job-api (/v1/fine_tuning/)."""
    paths = set(app.openapi()["paths"]) | {getattr(route, "path", "") for route in app.routes}
    return sorted(
        p
        for p in paths
        if p.startswith("/api/")
        or (name == "job-api" and p in DOCS)
        or (name == "model-server" and p.startswith("/v1/"))
        or (name == "data-service" and p.startswith("/v1/files"))
        or (name == "job-api" and p.startswith("/v1/fine_tuning/"))
    )


async def test_methods_nginx_refuses_get_the_json_405_with_the_services_allow(
    stack: Stack,
) -> None:
    checked = 0
    async with httpx.AsyncClient(base_url=stack.base, timeout=10) as through:
        for name, (app, own_base) in stack.apps.items():
            async with httpx.AsyncClient(base_url=own_base, timeout=10) as direct:
                for template in _public_paths(name, app):
                    path = _instance(template)
                    own = await direct.request("TRACE", path)
                    assert own.status_code == 405, (name, path, own.text)
                    r = await through.request("TRACE", path)
                    error = _error(r, 405, "method_not_allowed")
                    assert r.headers["allow"] == own.headers["allow"], (name, template)
                    assert error["message"] == (
                        f"TRACE is not allowed here; use {own.headers['allow']}."
                    )
                    assert r.headers["x-request-id"]
                    checked += 1
        assert checked >= 20
        # Each service's docs page and document at the gateway's own paths: the service's /docs.
        for name, (_, own_base) in stack.apps.items():
            async with httpx.AsyncClient(base_url=own_base, timeout=10) as direct:
                own = await direct.request("TRACE", "/docs")
            for path in (f"/docs/{name}", f"/openapi/{name}.json"):
                r = await through.request("TRACE", path)
                _error(r, 405, "method_not_allowed")
                assert r.headers["allow"] == own.headers["allow"], path
        for path, allow in (("/", "GET, HEAD"), ("/finetune/x", "GET, HEAD"), ("/healthz", "GET")):
            r = await through.request("TRACE", path)
            _error(r, 405, "method_not_allowed")
            assert r.headers["allow"] == allow


def _logs(run_dir: Path) -> str:
    return "\n".join(
        (run_dir / name).read_text()
        for name in ("access.log", "error.log")
        if (run_dir / name).exists()
    )


async def test_a_data_ticket_never_reaches_the_gateways_logs(stack: Stack, tmp_path: Path) -> None:
    body = classifier_csv(40)
    async with httpx.AsyncClient(base_url=stack.base, timeout=30) as client:
        r = await client.post(
            "/api/finetune/upload",
            headers=user_headers(),
            files={"file": ("train.csv", body, "text/csv")},
        )
        assert r.status_code == 201, r.text
        dataset_id = r.json()["data"]["id"]
        ticket, _ = mint_data_ticket(
            TICKET_SECRET,
            dataset_id=uuid.UUID(dataset_id),
            job_id=uuid.uuid4(),
            attempt=1,
            ttl=timedelta(minutes=5),
        )
        download = f"/api/finetune/datasets/{dataset_id}/download"
        bearer = {"Authorization": f"Bearer {ticket}"}
        got = await client.get(download, headers=bearer)
        assert got.status_code == 200
        assert got.content == body
        error = _error(await client.get(download, params={"ticket": ticket}), 400, "ticket_in_url")
        assert ticket not in error["message"]

    # The same requests through a gateway whose services are all down: the upstream errors are
    # logged (with the request line), the ticket and the stream's token are not.
    token = user_headers()["Authorization"].removeprefix("Bearer ")
    dead = {
        name: f"127.0.0.1:{_closed_port()}"
        for name in (
            "FTD_JOB_API_ADDR",
            "FTD_DATA_SERVICE_ADDR",
            "FTD_REGISTRY_ADDR",
            "FTD_MODEL_SERVER_ADDR",
            "FTD_WEBHOOK_ADDR",
            "FTD_UI_ADDR",
        )
    }
    with run_dir() as folder:
        with gateway(folder, dead) as base:
            await _up(base)
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                _error(await client.get(download, headers=bearer), 502, "service_unavailable")
                _error(await client.get(download, params={"ticket": ticket}), 400, "ticket_in_url")
                _error(
                    await client.request("TRACE", download, headers=bearer),
                    405,
                    "method_not_allowed",
                )
                for stream in (
                    "/api/finetune/jobs/stream",
                    f"/api/finetune/jobs/{uuid.uuid4()}/stream",
                ):
                    r = await client.get(stream, params={"access_token": token})
                    _error(r, 502, "service_unavailable")
        # The forced upstream error was logged, request line included.
        assert "connect() failed" in (folder / "error.log").read_text()
        signature = ticket.rsplit(".", 1)[1]
        for run in (stack.run_dir, folder):
            text = _logs(run)
            assert download in text
            for secret in (ticket, signature, token, token.rsplit(".", 1)[1]):
                assert secret not in text, run
            assert "access_token" not in text, run
