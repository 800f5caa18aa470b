"""ftd-serve takes its secrets (the registry token, the API key) from the environment or a file,
never as argument values, which any user on the machine can read (`ps`)."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpu_worker.serve import cli
from gpu_worker.serve.registry import RegistryError

runner = CliRunner()


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The registry calls made (then refused, so nothing is loaded or served)."""
    calls: list[tuple[str, str]] = []

    def deployed_models(base_url: str, token: str) -> list[object]:
        calls.append((base_url, token))
        raise RegistryError("the registry answered 401")

    monkeypatch.setattr(cli, "deployed_models", deployed_models)
    monkeypatch.delenv(cli.TOKEN_ENV, raising=False)
    monkeypatch.delenv(cli.API_KEY_ENV, raising=False)
    return calls


def test_the_token_is_not_an_option(asked: list[tuple[str, str]]) -> None:
    result = runner.invoke(cli.app, ["--registry-url", "http://r", "--token", "secret-jwt"])

    assert result.exit_code == 2
    assert "No such option" in result.output
    assert asked == []


def test_the_token_comes_from_the_environment(
    asked: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cli.TOKEN_ENV, "jwt-from-env")

    result = runner.invoke(cli.app, ["--registry-url", "http://r"])

    assert asked == [("http://r", "jwt-from-env")]
    assert result.exit_code == 2
    assert "401" in result.output


def test_a_token_file_wins_over_the_environment(
    asked: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(cli.TOKEN_ENV, "jwt-from-env")
    token_file = tmp_path / "token"
    token_file.write_text("jwt-from-file\n")

    runner.invoke(cli.app, ["--registry-url", "http://r", "--token-file", str(token_file)])

    assert asked == [("http://r", "jwt-from-file")]


def test_no_token_says_where_to_put_it(asked: list[tuple[str, str]], tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["--registry-url", "http://r"])
    assert result.exit_code == 2
    assert cli.TOKEN_ENV in result.output
    assert "--token-file" in result.output

    empty = tmp_path / "empty"
    empty.write_text("  \n")
    result = runner.invoke(cli.app, ["--registry-url", "http://r", "--token-file", str(empty)])
    assert result.exit_code == 2
    # The console wraps at its width, and a temporary path is as long as it likes.
    assert "is empty" in " ".join(result.output.split())
    assert asked == []


def test_the_api_key_is_not_an_option_either(asked: list[tuple[str, str]]) -> None:
    result = runner.invoke(cli.app, ["--model", "a=file:///x", "--api-key", "k"])

    assert result.exit_code == 2
    assert "No such option" in result.output


def test_secret_from_reads_a_file_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SOME_KEY", "from-env")
    key_file = tmp_path / "key"
    key_file.write_text(" from-file \n")

    assert cli.secret_from("SOME_KEY", None) == "from-env"
    assert cli.secret_from("SOME_KEY", key_file) == "from-file"
    monkeypatch.delenv("SOME_KEY")
    assert cli.secret_from("SOME_KEY", None) is None
    with pytest.raises(cli.SourceError, match="cannot read"):
        cli.secret_from("SOME_KEY", tmp_path / "missing")
