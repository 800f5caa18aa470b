"""`job-api token` mints a development token the API accepts."""

import pytest
from typer.testing import CliRunner

from job_api.entrypoints.cli import app
from servicekit.auth import JwtVerifier

SECRET = "cli-test-secret-0123456789abcdef"


def test_token_command_mints_a_verifiable_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTD_JWT_SECRET", SECRET)
    monkeypatch.setenv("FINETUNE_WORKER_KEY", "cli-test-worker-key-0123456789")
    result = CliRunner().invoke(app, ["token", "--sub", "alice", "--admin", "--ttl", "60"])
    assert result.exit_code == 0, result.output
    principal = JwtVerifier(algorithm="HS256", secret=SECRET).verify(result.stdout.strip())
    assert principal.user_id == "alice"
    assert principal.is_admin


def test_token_command_refuses_without_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTD_JWT_SECRET", raising=False)
    monkeypatch.setenv("FINETUNE_WORKER_KEY", "cli-test-worker-key-0123456789")
    result = CliRunner().invoke(app, ["token", "--sub", "alice"])
    assert result.exit_code == 2
    assert "FTD_JWT_SECRET must be set" in result.output
