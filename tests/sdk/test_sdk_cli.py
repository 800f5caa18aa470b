"""The `ftd` command against the real stack, run as a user runs it: `jobs watch` in a
pseudo-terminal shows the live bar and exits with the job's outcome, `--json` output parses,
`login` stores the token for the owner only, an invalid upload exits 1 with its report."""

import json
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pexpect
import pytest
from ftd import Client
from ftd_stack import Stack
from sdk_testing import JOB_TIMEOUT_S, classifier_csv, ftd_command, start_job

pytest.importorskip("torch", reason="the training stack is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.training, pytest.mark.timeout(900)]


@pytest.fixture
def env(stack: Stack, token: str, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": str(Path(ftd_command()).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FTD_CONFIG_DIR": str(tmp_path / "config"),
        "FTD_BASE_URL": stack.base_url,
        "FTD_TOKEN": token,
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ftd_command(), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def run_json(env: dict[str, str], *args: str, status: int = 0) -> Any:
    done = run(env, *args, "--json")
    assert done.returncode == status, (done.stdout, done.stderr)
    assert "\x1b[" not in done.stdout, "no colour in --json output"
    return json.loads(done.stdout)


def spawn(env: dict[str, str], *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        ftd_command(), list(args), env=env, encoding="utf-8", dimensions=(40, 160), timeout=120
    )


def test_watch_shows_the_live_bar_and_exits_0_when_the_job_completes(
    stack: Stack, sdk: Client, env: dict[str, str], tmp_path: Path
) -> None:
    job = start_job(sdk, tmp_path, "sdk-alice/watched", epochs=3)
    child = spawn(env, "jobs", "watch", str(job.id))
    child.expect(r"step [1-9]\d*/\d+", timeout=JOB_TIMEOUT_S)
    child.expect(r"loss \d+\.\d{4}", timeout=60)
    child.expect(r"ETA \d+:\d\d:\d\d", timeout=60)
    child.expect(r"completed", timeout=JOB_TIMEOUT_S)
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 0, child.before
    assert sdk.jobs.get(job.id).status == "completed"

    # The same job as JSON lines: its events, then the job; exit 0.
    done = run(env, "jobs", "watch", str(job.id), "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["kind"] == "snapshot"
    assert lines[-1]["id"] == str(job.id)
    assert lines[-1]["status"] == "completed"

    models = run_json(env, "models", "list", "--name", "sdk-alice/watched")
    assert isinstance(models["data"], list)
    listed = run_json(env, "jobs", "list", "--limit", "50")
    assert str(job.id) in {j["id"] for j in listed["data"]}
    assert run_json(env, "jobs", "get", str(job.id))["status"] == "completed"


def test_watch_exits_non_zero_when_the_job_is_cancelled(
    stack: Stack, sdk: Client, env: dict[str, str], tmp_path: Path
) -> None:
    job = start_job(sdk, tmp_path, "sdk-alice/cancelled", epochs=40)
    child = spawn(env, "jobs", "watch", str(job.id))
    child.expect(r"step [1-9]\d*/\d+", timeout=JOB_TIMEOUT_S)
    cancelled = run_json(env, "jobs", "cancel", str(job.id))
    assert cancelled["status"] == "cancelled"
    child.expect("cancelled", timeout=120)
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    assert child.exitstatus == 3, child.before


def test_errors_and_invalid_data_exit_1_with_json_that_parses(
    env: dict[str, str], tmp_path: Path
) -> None:
    missing = run_json(env, "jobs", "get", str(uuid.uuid4()), status=1)
    assert missing["error"]["code"] == "job_not_found"
    assert missing["error"]["status"] == 404

    bad = tmp_path / "one-class.csv"
    bad.write_text("text,label\n" + "a fine review,positive\n" * 20)
    refused = run_json(env, "data", "upload", str(bad), "--type", "classifier", status=1)
    assert refused["error"]["code"] == "invalid_dataset"
    assert refused["error"]["details"]["valid"] is False

    shown = run(env, "data", "upload", str(bad), "--type", "classifier")
    assert shown.returncode == 1
    assert "not valid" in shown.stdout

    good = classifier_csv(tmp_path / "reviews.csv")
    stored = run_json(env, "data", "upload", str(good), "--type", "classifier")
    assert stored["training_data_url"].startswith("ftd://datasets/")
    assert stored["validation"]["valid"] is True


def test_login_stores_the_token_for_its_owner_only(
    stack: Stack, token: str, env: dict[str, str], tmp_path: Path
) -> None:
    without_token = {k: v for k, v in env.items() if k != "FTD_TOKEN"}
    refused = run(without_token, "jobs", "list")
    assert refused.returncode == 1
    assert "401" in refused.stderr

    child = spawn(without_token, "login")
    child.expect("API token")
    child.sendline(token)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert token not in (child.before or ""), "the token is neither echoed nor printed"

    stored = tmp_path / "config" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert isinstance(run_json(without_token, "jobs", "list")["data"], list)

    wrong = run_json(without_token, "login", "--token", "not-a-token", status=1)
    assert wrong["error"]["status"] == 401
    assert isinstance(run_json(without_token, "jobs", "list")["data"], list), "kept the good one"
