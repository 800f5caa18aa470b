"""The login store: owner-only permissions, one token per server, the resolution order."""

import stat
from pathlib import Path

import pytest
from ftd.config import DEFAULT_BASE_URL, TokenStore, resolve


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_saved_token_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "cfg" / "ftd")
    path = store.save("https://ftd.example.com/", "secret-token")
    assert path == tmp_path / "cfg" / "ftd" / "credentials.json"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    # Saving again (another server) keeps the permissions and leaves no temporary file behind.
    store.save("http://localhost:8000", "other")
    assert mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]


def test_an_existing_folder_is_narrowed_to_its_owner(tmp_path: Path) -> None:
    folder = tmp_path / "ftd"
    folder.mkdir(mode=0o755)
    TokenStore(folder).save("http://localhost:8000", "t")
    assert mode(folder) == 0o700


def test_the_token_is_kept_per_server_and_never_sent_to_another(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    store.save("https://a.example.com", "token-a")
    store.save("https://b.example.com/", "token-b")
    assert store.current() is not None
    assert store.current().base_url == "https://b.example.com"
    assert resolve(store=store) == ("https://b.example.com", "token-b")
    assert resolve("https://a.example.com/", store=store) == ("https://a.example.com", "token-a")
    assert resolve("https://elsewhere.example.com", store=store) == (
        "https://elsewhere.example.com",
        None,
    )
    assert store.forget("https://b.example.com")
    assert not store.forget("https://b.example.com")
    assert store.current() is None
    assert resolve(store=store) == (DEFAULT_BASE_URL, None)


def test_arguments_then_environment_then_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TokenStore(tmp_path)
    store.save("https://stored.example.com", "stored")
    monkeypatch.setenv("FTD_TOKEN", "from-env")
    monkeypatch.setenv("FTD_BASE_URL", "https://env.example.com")
    assert resolve(store=store) == ("https://env.example.com", "from-env")
    assert resolve("https://arg.example.com", "from-arg", store=store) == (
        "https://arg.example.com",
        "from-arg",
    )
    monkeypatch.delenv("FTD_TOKEN")
    monkeypatch.delenv("FTD_BASE_URL")
    assert resolve(store=store) == ("https://stored.example.com", "stored")


def test_a_damaged_store_reads_as_no_login(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text("{not json")
    store = TokenStore(tmp_path)
    assert store.current() is None
    store.save("http://localhost:8000", "fresh")
    assert resolve(store=store) == ("http://localhost:8000", "fresh")
