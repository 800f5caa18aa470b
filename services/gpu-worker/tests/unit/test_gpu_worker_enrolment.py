"""The worker's credential: where it comes from, where it is kept, how it reaches the broker."""

import stat
import uuid
from pathlib import Path

import pytest
import typer

from contracts.credentials import new_token
from gpu_worker.adapters.enrolment import (
    Enrolment,
    NoBrokerUrl,
    broker_url,
    load_credentials,
    save_credentials,
)
from gpu_worker.config import WorkerSettings
from gpu_worker.entrypoints import cli, supervisor

TOKEN = new_token(uuid.uuid4().hex).token


def _enrolment(**changes: object) -> Enrolment:
    values: dict[str, object] = {
        "worker_id": "0" * 32,
        "name": "box",
        "pool": "shared",
        "broker_url": "amqps://broker.example.com:5671/%2Ffinetune",
        "broker_username": "ftdw-" + "0" * 32,
        "broker_prefix": "",
        "lease_seconds": 90.0,
    }
    values.update(changes)
    return Enrolment(**values)  # type: ignore[arg-type]


def test_the_worker_dials_as_its_own_broker_user_with_its_token() -> None:
    url = broker_url(_enrolment(), TOKEN, override=None)
    assert url.startswith(f"amqps://ftdw-{'0' * 32}:{TOKEN}@broker.example.com:5671/")
    # An operator's URL (another host, a TLS port) keeps the worker's own user.
    moved = broker_url(_enrolment(), TOKEN, override="amqps://guest:guest@other:5671/vh")
    assert moved == f"amqps://ftdw-{'0' * 32}:{TOKEN}@other:5671/vh"
    # Without a broker user of its own (development), the URL is used as given.
    dev = broker_url(_enrolment(broker_username=None), TOKEN, override="amqp://g:g@h/")
    assert dev == "amqp://g:g@h/"
    with pytest.raises(NoBrokerUrl):
        broker_url(_enrolment(broker_url=None), TOKEN, override=None)


def test_login_keeps_the_token_readable_by_this_user_only(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "credentials.json"
    save_credentials(path, api_url="https://ftd.example.com", token=TOKEN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_credentials(path) == ("https://ftd.example.com", TOKEN)
    with pytest.raises(ValueError, match="not a worker token"):
        save_credentials(path, api_url="x", token="hf_abc")


def test_the_token_comes_from_the_environment_a_file_or_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "credentials_file", lambda: tmp_path / "none.json")
    assert cli.resolve_token(WorkerSettings(token=TOKEN), None) == (TOKEN, "http://localhost:8000")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    from_file = cli.resolve_token(WorkerSettings(token_file=token_file), "https://p.example")
    assert from_file == (TOKEN, "https://p.example")

    saved = tmp_path / "saved.json"
    save_credentials(saved, api_url="https://ftd.example.com", token=TOKEN)
    monkeypatch.setattr(cli, "credentials_file", lambda: saved)
    assert cli.resolve_token(WorkerSettings(), None) == (TOKEN, "https://ftd.example.com")

    monkeypatch.setattr(cli, "credentials_file", lambda: tmp_path / "none.json")
    for settings in (WorkerSettings(), WorkerSettings(token="not-a-worker-token")):
        with pytest.raises(typer.Exit) as exited:
            cli.resolve_token(settings, None)
        assert exited.value.exit_code == 2


async def test_serve_starts_the_worker_again_after_an_unexpected_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The in-process supervisor: a crash is followed by a new life after a back-off; a refused
    credential ends the process with status 3 instead of a crash loop."""
    lives: list[str] = []

    async def crashing_then_fine(*args: object, **kwargs: object) -> int:
        lives.append("life")
        if len(lives) == 1:
            raise RuntimeError("something nobody foresaw")
        return 0

    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr(supervisor, "serve_once", crashing_then_fine)
    monkeypatch.setattr(supervisor.asyncio, "sleep", no_wait)
    settings = WorkerSettings(token=TOKEN)
    status = await supervisor.serve(settings, [], None, None, token=TOKEN, api_url="http://x")  # type: ignore[arg-type]
    assert (status, len(lives)) == (0, 2)

    async def refused(*args: object, **kwargs: object) -> int:
        raise supervisor.CredentialRefused("revoked")

    monkeypatch.setattr(supervisor, "serve_once", refused)
    assert await supervisor.serve(settings, [], None, None, token=TOKEN, api_url="http://x") == 3  # type: ignore[arg-type]

    monkeypatch.setattr(supervisor, "serve_once", crashing_then_fine)
    lives.clear()
    unsupervised = WorkerSettings(token=TOKEN, supervise=False)
    with pytest.raises(RuntimeError):
        await supervisor.serve(unsupervised, [], None, None, token=TOKEN, api_url="http://x")  # type: ignore[arg-type]
