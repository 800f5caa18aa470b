"""A URL a user gives is data, never a door (the review's SSRF findings), on the running stack.

At creation: `training_data_url` naming an internal or oddly spelled host was accepted (12 of 24
forms); now each is a 422 with a code and nothing is created, while a public storage URL is still
accepted. At fetch: the worker followed an https -> http redirect to an internal server, trained on
what it got, quoted the internal response's first line in `job.error`, and had no size cap. Here
the operator's own file server (`ALLOWED_HOST`, allow-listed, its certificate signed by the CA the
worker is given) plays the allowed host; loopback listeners stand in for internal servers and
count every connection they receive.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from netguard_testing import LoopbackServer, Reply
from security_stack import ALLOWED_HOST, MAX_EXTERNAL_BYTES, SecurityStack, client
from security_workers import all_events, create_job, ended, job_request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# (URL, the code it is refused with). Bracketed IPv6 literals are not a host the job-api accepts
# in a data URL at all (invalid_training_data_url); every other form is judged and refused as
# naming an internal place (data_url_refused).
REFUSED = [
    ("https://169.254.169.254/latest/meta-data/iam/security-credentials/", "data_url_refused"),
    ("https://10.0.0.1/", "data_url_refused"),
    ("https://127.0.0.1:5432/", "data_url_refused"),
    ("https://0x7f000001/", "data_url_refused"),
    ("https://2130706433/", "data_url_refused"),
    ("https://0177.0.0.1/", "data_url_refused"),
    ("https://127.1/", "data_url_refused"),
    ("https://[::1]/", "invalid_training_data_url"),
    ("https://[::ffff:127.0.0.1]/", "invalid_training_data_url"),
    ("https://[::ffff:a9fe:a9fe]/latest/meta-data/", "invalid_training_data_url"),
    ("https://[fd00:ec2::254]/latest/meta-data/", "invalid_training_data_url"),
    ("https://metadata.google.internal/computeMetadata/v1/", "data_url_refused"),
    ("https://metadata/computeMetadata/v1/", "data_url_refused"),
    ("https://instance-data.ec2.internal/latest/", "data_url_refused"),
    ("https://localhost/", "data_url_refused"),
    ("https://db.localhost:5432/", "data_url_refused"),
    ("https://100.64.0.1/", "data_url_refused"),
    ("https://100.100.100.200/latest/meta-data/", "data_url_refused"),
    ("https://224.0.0.1/", "data_url_refused"),
    ("https://0.0.0.0/", "data_url_refused"),
    ("https://0/", "data_url_refused"),
    ("https://192.168.0.1/", "data_url_refused"),
    ("https://172.16.0.1/", "data_url_refused"),
    ("https://10.1/", "data_url_refused"),
    ("https://0x0a.0.0.1/", "data_url_refused"),
    ("https://255.255.255.255/", "data_url_refused"),
    ("https://printer.local/data.csv", "data_url_refused"),
    ("https://files/data.csv", "data_url_refused"),
    ("https://127.0.0.1./", "invalid_training_data_url"),
    ("https://user:password@example.com/data.csv", "credentials_in_url"),
    ("http://example.com/data.csv", "invalid_training_data_url"),
]
# The product brief's example, a storage URL of a public host: accepted as it always was.
BRIEF_EXAMPLE = "https://storage.googleapis.com/my-bucket/data.csv"
SECRET = "INTERNAL-SECRET-abc123"
# What an internal server might answer: its first line is no header any trainer knows.
INTERNAL_RESPONSE = f"{SECRET},db_password,admin\n".encode() + b"x,y,z\n" * 20


@pytest.fixture
async def alice(stack: SecurityStack) -> AsyncIterator[httpx.AsyncClient]:
    async with client(stack, "alice") as http:
        yield http


async def _job_ids(http: httpx.AsyncClient) -> set[str]:
    r = await http.get("/api/finetune/jobs", params={"limit": 200})
    assert r.status_code == 200, r.text
    return {j["id"] for j in r.json()["data"]}


async def test_internal_and_odd_data_urls_are_refused_at_creation_and_leave_nothing(
    stack: SecurityStack,
) -> None:
    assert len(REFUSED) >= 24
    async with client(stack, "ssrf-creator") as http:
        before = await _job_ids(http)
        for url, code in REFUSED:
            r = await http.post("/api/finetune/jobs", json=job_request("ssrf-creator/probe", url))
            assert r.status_code == 422, (url, r.text)
            error = r.json()["error"]
            assert error["code"] == code, (url, error)
            assert error["message"], url
            assert error["details"] == {"field": "training_data_url"}, (url, error)
            # The sentence names the kind of host, never the URL or a dotted host.
            assert url not in error["message"]
            host = urlsplit(url).hostname or ""
            assert "." not in host or host not in error["message"], (url, error)
        assert await _job_ids(http) == before, "nothing was created"

        created = await create_job(http, job_request("ssrf-creator/brief-example", BRIEF_EXAMPLE))
        assert created["training_data_url"] == BRIEF_EXAMPLE
        assert await _job_ids(http) == before | {created["id"]}
        await http.delete(f"/api/finetune/jobs/{created['id']}")


class AllowedHostServer(LoopbackServer):
    """The operator's file server: HTTPS on ALLOWED_HOST instead of 127.0.0.1."""

    async def start(self) -> "AllowedHostServer":
        self._server = await asyncio.start_server(self._accept, ALLOWED_HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def allowed_url(self, path: str) -> str:
        return self.url(path, host=ALLOWED_HOST)


@pytest.fixture
async def files(stack: SecurityStack) -> AsyncIterator[AllowedHostServer]:
    server = AllowedHostServer(tls=stack.ca.server())
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def internal() -> AsyncIterator[LoopbackServer]:
    """An internal plain-HTTP server on 127.0.0.1: nothing may reach it."""
    server = await LoopbackServer().start()
    server.routes["/secret.csv"] = Reply(body=INTERNAL_RESPONSE)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def internal_tls(stack: SecurityStack) -> AsyncIterator[LoopbackServer]:
    """An internal HTTPS server on 127.0.0.1 (a certificate the worker would even trust)."""
    server = await LoopbackServer(tls=stack.ca.server()).start()
    server.routes["/secret.csv"] = Reply(body=INTERNAL_RESPONSE)
    try:
        yield server
    finally:
        await server.close()


def _csv_job(output: str, url: str) -> dict[str, Any]:
    """An embedding job for the stack's CPU worker (provider local)."""
    return job_request(
        output,
        url,
        provider="local",
        hyperparameters={"epochs": 1, "batch_size": 8, "max_seq_length": 16, "eval_split": 0.2},
    )


async def _failed_quietly(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The job failed as the user's error, and nothing the user sees quotes the secret."""
    job = await ended(http, job_id)
    assert job["status"] == "failed", job
    assert job["failure_class"] == "user_error", job
    assert job["error"]
    assert job["attempt"] == 1, "a refusal is not retried"
    events = await all_events(http, job_id)
    seen = str(job) + str(events)
    assert SECRET not in seen
    assert "db_password" not in seen
    return job


async def test_a_redirect_from_the_allowed_host_to_an_internal_http_server_is_not_followed(
    alice: httpx.AsyncClient, files: AllowedHostServer, internal: LoopbackServer
) -> None:
    files.routes["/data.csv"] = Reply(302, {"Location": internal.url("/secret.csv")})

    created = await create_job(
        alice, _csv_job("alice/ssrf-redirect", files.allowed_url("/data.csv"))
    )
    job = await _failed_quietly(alice, created["id"])

    assert [r.path for r in files.requests] == ["/data.csv"], "the worker asked the allowed host"
    assert internal.connections == 0, "and never connected to the internal server"
    assert "redirect" in job["error"]
    assert "127.0.0.1" not in job["error"]
    assert str(internal.port) not in job["error"]


async def test_a_redirect_to_an_internal_https_server_is_refused_before_connecting(
    alice: httpx.AsyncClient, files: AllowedHostServer, internal_tls: LoopbackServer
) -> None:
    files.routes["/data.csv"] = Reply(307, {"Location": internal_tls.url("/secret.csv")})

    created = await create_job(
        alice, _csv_job("alice/ssrf-redirect-tls", files.allowed_url("/data.csv"))
    )
    job = await _failed_quietly(alice, created["id"])

    assert [r.path for r in files.requests] == ["/data.csv"]
    assert internal_tls.connections == 0
    assert "loopback" in job["error"], job["error"]


async def test_a_file_that_does_not_parse_is_reported_without_its_content(
    alice: httpx.AsyncClient, files: AllowedHostServer
) -> None:
    files.routes["/data.csv"] = Reply(body=INTERNAL_RESPONSE)

    created = await create_job(
        alice, _csv_job("alice/ssrf-content", files.allowed_url("/data.csv"))
    )
    job = await _failed_quietly(alice, created["id"])

    assert [r.path for r in files.requests] == ["/data.csv"], "the file was fetched"
    assert "not a valid CSV/JSONL" in job["error"], job["error"]


async def test_a_body_over_the_cap_is_stopped(
    alice: httpx.AsyncClient, files: AllowedHostServer
) -> None:
    # Chunked, no length announced: the worker has to count and stop reading itself.
    body = b"text\n" + b"a line of training text that goes on and on\n" * (
        4 * MAX_EXTERNAL_BYTES // 40
    )
    files.routes["/big.csv"] = Reply(body=body, chunked=True)

    created = await create_job(alice, _csv_job("alice/ssrf-big", files.allowed_url("/big.csv")))
    job = await _failed_quietly(alice, created["id"])

    assert f"larger than {MAX_EXTERNAL_BYTES} bytes" in job["error"], job["error"]
    assert [r.path for r in files.requests] == ["/big.csv"]


@pytest.mark.training
async def test_a_data_url_on_the_allowed_host_is_fetched_and_trained(
    alice: httpx.AsyncClient, files: AllowedHostServer
) -> None:
    """The control: the same path with a good file trains, so the refusals above are the
    guard's and not a server the worker could not reach."""
    pytest.importorskip("torch", reason="the training stack is not installed")
    rows = "".join(f"what is item {i}?,item {i} is a thing number {i}\n" for i in range(24))
    files.routes["/pairs.csv"] = Reply(body=f"anchor,positive\n{rows}".encode())

    created = await create_job(
        alice, _csv_job("alice/ssrf-control", files.allowed_url("/pairs.csv"))
    )
    job = await ended(alice, created["id"], timeout=300)

    assert job["status"] == "completed", job
    assert [r.path for r in files.requests] == ["/pairs.csv"]
