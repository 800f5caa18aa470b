"""The review's small findings about what a request may carry, on the running stack through the
gateway: tokens whose subject holds a NUL (a 500 in every service) or whose `exp` is a numeric
string (accepted); a JSONL line of 100,000 nested brackets (a 500); a data ticket in nginx's
error log when the upstream of a download failed; a serving process taking a token or key on its
command line (model-server takes none).
"""

import os
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from ftd_stack import BIN
from security_stack import SecurityStack, client
from security_workers import create_job, enroll, job_request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# One route of each service behind the gateway that needs a user token.
USER_ROUTES = {
    "job-api": ("GET", "/api/finetune/jobs"),
    "job-api stream": ("GET", "/api/finetune/jobs/stream"),
    "data-service": ("GET", "/api/finetune/datasets"),
    "data-service upload": ("POST", "/api/finetune/upload"),
    "registry-service": ("GET", "/api/models"),
    "registry-service litellm": ("GET", "/api/models/litellm-config"),
}


def _signed(stack: SecurityStack, claims: dict[str, Any]) -> str:
    """A token signed with the stack's real secret: only its claims are wrong."""
    now = int(time.time())
    body = {"iat": now, "exp": now + 600, **claims}
    return jwt.encode(body, stack.stack.jwt_secret, algorithm="HS256")


async def _answers(stack: SecurityStack, token: str) -> dict[str, httpx.Response]:
    headers = {"Authorization": f"Bearer {token}"}
    found = {}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        for name, (method, path) in USER_ROUTES.items():
            if name == "job-api stream":
                # A stream that opens never ends: its body is read only when it is refused.
                async with http.stream(method, path, headers=headers) as r:
                    if r.status_code != 200:
                        await r.aread()
                    found[name] = r
            else:
                found[name] = await http.request(method, path, headers=headers)
    return found


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "alice\x00"},
        {"sub": "\x00"},
        {"sub": "al\x00ice"},
        {"sub": "alice\x1b[2J"},
        {"sub": ""},
        {"sub": "a" * 300},
        {"sub": "\ud800"},
        {"sub": "alice", "exp": "9999999999"},
        {"sub": "alice", "exp": True},
        {"sub": "alice", "iat": "0"},
        {"sub": "alice", "nbf": "0"},
    ],
    ids=[
        "nul-at-end",
        "only-nul",
        "nul-inside",
        "escape-sequence",
        "empty",
        "too-long",
        "lone-surrogate",
        "numeric-string-exp",
        "boolean-exp",
        "numeric-string-iat",
        "numeric-string-nbf",
    ],
)
async def test_a_token_with_a_bad_subject_or_time_claim_is_a_401_in_every_service(
    stack: SecurityStack, claims: dict[str, Any]
) -> None:
    for name, r in (await _answers(stack, _signed(stack, claims))).items():
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.json()["error"]["code"] == "invalid_token", (name, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer"), name


async def test_the_same_token_with_sane_claims_is_accepted_everywhere(
    stack: SecurityStack,
) -> None:
    """The control for the test above: the routes and the signing are right."""
    for name, r in (await _answers(stack, _signed(stack, {"sub": "alice"}))).items():
        if name == "data-service upload":
            assert r.status_code in (400, 415, 422), (name, r.text)  # no file: the body's fault
        else:
            assert r.status_code == 200, (name, r.text)


async def test_a_jsonl_line_of_100k_nested_brackets_is_a_422_naming_the_line(
    stack: SecurityStack,
) -> None:
    good = b'{"instruction": "say hi", "output": "hi"}\n' * 12
    deep = b'{"instruction": ' + b"[" * 100_000 + b"]" * 100_000 + b', "output": "x"}\n'
    async with client(stack, "nesting") as http:
        before = (await http.get("/api/finetune/datasets")).json()["data"]
        r = await http.post(
            "/api/finetune/upload",
            data={"job_type": "llm_lora"},
            files={"file": ("deep.jsonl", good + deep, "application/jsonl")},
        )
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"], error
        assert "nesting_too_deep" in r.text, r.text
        assert "13" in r.text, "the report names the line"
        assert (await http.get("/api/finetune/datasets")).json()["data"] == before


@pytest.fixture
async def ticket(stack: SecurityStack) -> AsyncIterator[tuple[str, str]]:
    """A real data ticket and the download URL it opens: a worker's HTTP claim of a job on an
    uploaded dataset (job-api mints the ticket for that claim only)."""
    rows = b"text,label\n" + b"a good day,positive\na bad day,negative\n" * 8
    async with client(stack, "ticket-owner") as http:
        r = await http.post(
            "/api/finetune/upload",
            data={"job_type": "classifier"},
            files={"file": ("reviews.csv", rows, "text/csv")},
        )
        assert r.status_code == 201, r.text
        job = await create_job(
            http,
            job_request(
                "ticket-owner/classifier",
                r.json()["data"]["training_data_url"],
                job_type="classifier",
            ),
        )
        worker = await enroll(stack, "ticket-claimer")
        claimed = await http.patch(
            f"/api/finetune/jobs/{job['id']}", json={"status": "running"}, headers=worker.bearer
        )
        assert claimed.status_code == 200, claimed.text
        data = claimed.json()["data"]
        bearer = data["data_headers"]["Authorization"]
        assert bearer.startswith("Bearer ")
        assert "ticket" not in data["data_url"]
        yield bearer.removeprefix("Bearer "), httpx.URL(data["data_url"]).path
        await http.delete(f"/api/finetune/jobs/{job['id']}")


async def test_a_data_ticket_never_reaches_the_gateways_logs_when_the_download_upstream_fails(
    stack: SecurityStack, ticket: tuple[str, str]
) -> None:
    token, download = ticket
    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        assert (await http.get(download, headers=bearer)).status_code == 200, "the ticket works"
        r = await http.get(download, params={"ticket": token})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "ticket_in_url"
        args = stack.stop("data-service")
        try:
            for attempt in (
                {"headers": bearer},
                {"params": {"ticket": token}},
                {"params": {"ticket": token}, "headers": bearer},
            ):
                r = await http.get(download, **attempt)  # type: ignore[arg-type]
                assert r.status_code in (400, 502), r.text
                assert token not in r.text
        finally:
            stack.start("data-service", args, **stack.service_env.get("data-service", {}))
    logs = stack.gateway_logs()
    assert "connect() failed" in logs, "the failed upstream was logged, with its request line"
    assert download in logs
    signature = token.rsplit(".", 1)[1]
    for secret in (token, signature, "ticket="):
        assert secret not in logs


def _options(*command: str) -> list[str]:
    out = subprocess.run(
        [str(BIN / command[0]), *command[1:], "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"},
        timeout=60,
    ).stdout
    return re.findall(r"(--[a-z][a-z0-9-]*)", out)


MODEL_SERVER_COMMANDS = ("serve", "migrate", "db-init", "openapi")


def test_model_server_takes_no_token_or_key_as_an_argument_value() -> None:
    """Any user on the machine reads a process's arguments (ps): model-server's secrets (the
    database password, the JWT secret, a Hub token, the vLLM key) come from its environment."""
    listed = set(
        re.findall(
            r"^│ (\S+) ",
            subprocess.check_output(
                [str(BIN / "model-server"), "--help"],
                text=True,
                env={**os.environ, "COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"},
                timeout=60,
            ),
            re.MULTILINE,
        )
    )
    # Every command is checked: a new one joins MODEL_SERVER_COMMANDS.
    assert {c for c in listed if not c.startswith("-")} == set(MODEL_SERVER_COMMANDS), listed
    for command in MODEL_SERVER_COMMANDS:
        options = set(_options("model-server", command))
        assert "--help" in options, (command, options)
        secret_options = {o for o in options if re.search(r"token|key|secret|password", o)}
        assert secret_options == set(), (command, secret_options)
    refused = subprocess.run(
        [str(BIN / "model-server"), "serve", "--hf-token", f"hf_{uuid.uuid4().hex}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "No such option" in refused.stderr + refused.stdout
