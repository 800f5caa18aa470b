"""services/gpu-worker/notebooks/colab_worker.ipynb, checked without Colab: a valid nbformat 4
notebook whose cells compile; the GPU check, the secrets cell and the stop handling run here against
stand-ins for torch, google.colab.userdata and ftd-worker; the secrets it documents are the ones it
reads, and what they set is what `ftd-worker run` resolves its token, platform and broker from; what
it installs (every workspace package the worker imports, as docs/workers.md's Kaggle steps do) and
the `ftd-worker` commands it runs exist in this repository."""

import ast
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from contracts.credentials import new_token
from contracts.enums import GPUProvider
from gpu_worker.config import WorkerSettings
from gpu_worker.entrypoints.cli import app, resolve_token

ROOT = Path(__file__).resolve().parents[4]
NOTEBOOK = ROOT / "services/gpu-worker/notebooks/colab_worker.ipynb"
CLONE = "/content/ftd/"  # where the notebook clones this repository
WORKERS_DOC = ROOT / "docs/workers.md"


def notebook() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(NOTEBOOK.read_text())
    return loaded


def text(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def code_cells() -> list[str]:
    return [text(c) for c in notebook()["cells"] if c["cell_type"] == "code"]


def cell_starting(prefix: str) -> str:
    found = [source for source in code_cells() if source.startswith(prefix)]
    assert len(found) == 1, f"one code cell starting {prefix!r}"
    return found[0]


def python_only(source: str) -> str:
    """The cell without IPython `!` shell and `%` magic lines (and their `\\` continuations)."""
    kept, continued = [], False
    for line in source.splitlines():
        if continued or line.lstrip().startswith(("!", "%")):
            continued = line.rstrip().endswith("\\")
            kept.append("")
            continue
        kept.append(line)
    return "\n".join(kept)


def run_cell(source: str) -> None:
    """Run a cell of the notebook (our own file) as the Colab kernel would."""
    exec(compile(python_only(source), str(NOTEBOOK), "exec"), {})  # noqa: S102


def test_is_a_valid_nbformat_4_notebook_without_outputs() -> None:
    nb = notebook()
    assert set(nb) == {"cells", "metadata", "nbformat", "nbformat_minor"}
    assert nb["nbformat"] == 4
    assert isinstance(nb["nbformat_minor"], int)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    allowed = {
        "markdown": {"cell_type", "metadata", "source", "attachments", "id"},
        "code": {"cell_type", "metadata", "source", "outputs", "execution_count", "id"},
        "raw": {"cell_type", "metadata", "source", "attachments", "id"},
    }
    for cell in nb["cells"]:
        assert cell["cell_type"] in allowed
        assert set(cell) <= allowed[cell["cell_type"]]
        assert isinstance(cell["metadata"], dict)
        source = cell["source"]
        assert isinstance(source, str) or all(isinstance(s, str) for s in source)
        if nb["nbformat_minor"] >= 5:
            assert isinstance(cell.get("id"), str)
        if cell["cell_type"] == "code":
            # A saved output could hold a secret or a log line; the notebook ships clean.
            assert cell["outputs"] == []
            assert cell["execution_count"] is None


def test_every_code_cell_compiles() -> None:
    cells = code_cells()
    assert len(cells) >= 4
    for number, source in enumerate(cells):
        compile(python_only(source), f"colab_worker.ipynb[code {number}]", "exec")


def test_python_only_strips_shell_lines_and_their_continuations() -> None:
    stripped = python_only("!pip install a \\\n    b\n%env X=1\nx = 1\n")
    compile(stripped, "<cell>", "exec")
    assert "pip" not in stripped
    assert "x = 1" in stripped


# --- the GPU check --------------------------------------------------------------------------------


def fake_torch(cuda: bool) -> types.ModuleType:
    torch = types.ModuleType("torch")
    torch.__version__ = "0+fake"  # type: ignore[attr-defined]
    torch.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        is_available=lambda: cuda, get_device_name=lambda index: "Fake T4"
    )
    return torch


def test_without_a_gpu_the_notebook_stops_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    cell = cell_starting("# 1.")
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=False))
    with pytest.raises(RuntimeError, match="No GPU"):
        run_cell(cell)


def test_with_a_gpu_it_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cell = cell_starting("# 1.")
    monkeypatch.setitem(sys.modules, "torch", fake_torch(cuda=True))
    run_cell(cell)
    assert "Fake T4" in capsys.readouterr().out


# --- secrets ----------------------------------------------------------------------------------------


class SecretNotFoundError(Exception):
    pass


class NotebookAccessError(Exception):
    pass


@pytest.fixture
def saved_environ() -> Iterator[None]:
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("FTD_", "HF_", "WANDB_")):
            del os.environ[name]
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def colab_with_secrets(monkeypatch: pytest.MonkeyPatch, secrets: dict[str, str]) -> list[str]:
    """google.colab.userdata as Colab has it (get() raising for a secret not added); returns the
    names asked for."""
    asked: list[str] = []

    def get(name: str) -> str:
        asked.append(name)
        if name == "WANDB_API_KEY" and name not in secrets:
            raise NotebookAccessError(name)  # added but not shared with this notebook
        if name not in secrets:
            raise SecretNotFoundError(name)
        return secrets[name]

    userdata = types.ModuleType("google.colab.userdata")
    userdata.get = get  # type: ignore[attr-defined]
    userdata.SecretNotFoundError = SecretNotFoundError  # type: ignore[attr-defined]
    userdata.NotebookAccessError = NotebookAccessError  # type: ignore[attr-defined]
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata  # type: ignore[attr-defined]
    google = types.ModuleType("google")
    google.colab = colab  # type: ignore[attr-defined]
    for name, module in (
        ("google", google),
        ("google.colab", colab),
        ("google.colab.userdata", userdata),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    return asked


def run_secrets_cell(content: Path) -> None:
    # The cell writes under Colab's /content; here under a temporary folder.
    run_cell(cell_starting("# 3.").replace('"/content/', f'"{content}/'))


TOKEN = new_token("0123456789abcdef0123456789abcdef").token
SECRETS = {
    "FTD_WORKER_TOKEN": TOKEN,
    "FTD_API_URL": "https://finetune.example.org",
    "FTD_AMQP_URL": "amqps://broker.example.org:5671/%2Ffinetune",
    "HF_TOKEN": "hf_secret_token_value",
    "WANDB_API_KEY": "wandb-secret-key-value",
    "FTD_BROKER_CA_PEM": "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
    "FTD_BROKER_CLIENT_CERT_PEM": "-----BEGIN CERTIFICATE-----\nME\n-----END CERTIFICATE-----\n",
    "FTD_BROKER_CLIENT_KEY_PEM": "-----BEGIN PRIVATE KEY-----\nK3Y\n-----END PRIVATE KEY-----\n",
}


@pytest.fixture
def no_saved_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`ftd-worker login`'s file is looked for under HOME: an empty one here."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.mark.usefixtures("saved_environ", "no_saved_login")
def test_secrets_come_from_colab_into_the_worker_settings_and_are_never_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    os.environ["FTD_WORKER_TOKEN_FILE"] = "/left/over/token"  # an earlier run's must not win
    asked = colab_with_secrets(monkeypatch, SECRETS)
    run_secrets_cell(tmp_path)
    printed = capsys.readouterr()
    assert set(SECRETS) <= set(asked)
    for value in SECRETS.values():
        for part in value.splitlines():
            if "-----" not in part:
                assert part not in printed.out + printed.err

    settings = WorkerSettings()  # what `ftd-worker run` reads from this environment
    # The worker's identity: `ftd-worker run` resolves the token and the platform from it.
    assert resolve_token(settings, None) == (TOKEN, SECRETS["FTD_API_URL"])
    assert settings.token_file is None
    assert settings.amqp_url is not None
    assert settings.amqp_url.get_secret_value() == SECRETS["FTD_AMQP_URL"]
    assert settings.hf_token is not None
    assert settings.hf_token.get_secret_value() == SECRETS["HF_TOKEN"]
    assert os.environ["WANDB_API_KEY"] == SECRETS["WANDB_API_KEY"]
    assert settings.provider is GPUProvider.COLAB
    assert settings.work_dir == tmp_path / "ftd-work"
    assert settings.model_store_dir == tmp_path / "models"
    assert settings.ca_file is not None
    assert settings.ca_file.read_text() == SECRETS["FTD_BROKER_CA_PEM"]
    assert settings.cert_file is not None
    assert settings.cert_file.read_text() == SECRETS["FTD_BROKER_CLIENT_CERT_PEM"]
    assert settings.key_file is not None
    assert settings.key_file.read_text() == SECRETS["FTD_BROKER_CLIENT_KEY_PEM"]
    assert settings.key_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.usefixtures("saved_environ", "no_saved_login")
def test_optional_secrets_may_be_missing_and_the_broker_address_then_comes_from_the_platform(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    os.environ["HF_TOKEN"] = "left-over-from-an-earlier-run"
    os.environ["FTD_WORKER_KEY_FILE"] = "/left/over.pem"
    os.environ["FTD_AMQP_URL"] = "amqp://left.over.example.org/"
    os.environ["FTD_WORKER_AMQP_URL"] = "amqp://left.over.example.org/"
    # Pasted with a trailing newline, as copied from a terminal.
    colab_with_secrets(
        monkeypatch, {"FTD_WORKER_TOKEN": TOKEN + "\n", "FTD_API_URL": "http://10.0.0.5:8000"}
    )
    run_secrets_cell(tmp_path)
    out = capsys.readouterr().out
    assert "not https://" in out
    assert "HF_TOKEN not set" in out
    assert "WANDB_API_KEY not set" in out
    settings = WorkerSettings()
    assert resolve_token(settings, None) == (TOKEN, "http://10.0.0.5:8000")
    assert settings.amqp_url is None  # the platform's broker address (GET /api/workers/me)
    assert settings.hf_token is None
    assert (settings.ca_file, settings.cert_file, settings.key_file) == (None, None, None)


@pytest.mark.usefixtures("saved_environ")
@pytest.mark.parametrize("missing", ["FTD_WORKER_TOKEN", "FTD_API_URL"])
def test_the_token_and_the_platform_url_are_required(
    missing: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    given = {k: v for k, v in SECRETS.items() if k != missing}
    colab_with_secrets(monkeypatch, given)
    with pytest.raises(RuntimeError, match=missing):
        run_secrets_cell(tmp_path)


@pytest.mark.usefixtures("saved_environ")
def test_a_secret_that_is_not_a_worker_token_is_refused_without_being_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wrong = "amqps://worker:s3cr3t-broker-pw@broker.example.org:5671/%2Ffinetune"
    colab_with_secrets(monkeypatch, {**SECRETS, "FTD_WORKER_TOKEN": wrong})
    with pytest.raises(RuntimeError, match="not a worker token") as refused:
        run_secrets_cell(tmp_path)
    printed = capsys.readouterr()
    assert "s3cr3t" not in str(refused.value) + printed.out + printed.err


@pytest.mark.usefixtures("saved_environ")
def test_the_secrets_it_documents_are_the_ones_it_reads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    markdown = "".join(text(c) for c in notebook()["cells"] if c["cell_type"] == "markdown")
    documented = set(re.findall(r"`((?:FTD|HF|WANDB)_[A-Z_]+)`", markdown))
    asked = colab_with_secrets(monkeypatch, SECRETS)
    run_secrets_cell(tmp_path)
    assert set(asked) == documented == set(SECRETS)
    for name in ("FTD_WORKER_TOKEN", "FTD_API_URL"):
        assert re.search(rf"`{name}` \(required\)", markdown), name


# --- what it installs and runs -------------------------------------------------------------------


def string_constants(source: str) -> list[str]:
    return [
        node.value
        for node in ast.walk(ast.parse(python_only(source)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def workspace_members() -> dict[str, Path]:
    """Workspace package name -> its folder."""
    return {
        tomllib.loads(p.read_text())["project"]["name"]: p.parent
        for p in ROOT.glob("*/*/pyproject.toml")
        if p.parent.parent.name in ("libs", "services")
    }


def needed_by_the_worker() -> set[Path]:
    """The workspace packages `ftd-worker` needs, which pip cannot find on an index: gpu-worker,
    every workspace package its code imports, and (transitively) what each of those declares."""
    members = workspace_members()
    by_module = {
        init.parent.name: folder
        for folder in members.values()
        for init in folder.glob("src/*/__init__.py")
    }
    needed = {members["gpu-worker"]}
    for source in (ROOT / "services/gpu-worker/src").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules = [node.module]
            else:
                continue
            needed.update(
                by_module[m.split(".")[0]] for m in modules if m.split(".")[0] in by_module
            )
    pending = list(needed)
    while pending:
        project = tomllib.loads((pending.pop() / "pyproject.toml").read_text())["project"]
        for requirement in project.get("dependencies", []):
            name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
            if name in members and members[name] not in needed:
                needed.add(members[name])
                pending.append(members[name])
    return needed


def test_the_install_cell_installs_what_the_worker_needs_from_this_repository() -> None:
    cell = cell_starting("# 2.")
    paths = [s for s in string_constants(cell) if s.startswith(CLONE)]
    for path in paths:
        assert (ROOT / path.removeprefix(CLONE)).exists(), path
    installed = {ROOT / p.removeprefix(CLONE) for p in paths}
    assert ROOT / "services/gpu-worker/requirements-train.txt" in installed
    needed = needed_by_the_worker()
    assert ROOT / "libs/workerlink" in needed  # the worker's side of the broker protocol
    missing = needed - installed
    assert not missing, f"the notebook does not install {sorted(str(m) for m in missing)}"


def test_the_kaggle_steps_install_what_the_notebook_installs() -> None:
    kaggle = WORKERS_DOC.read_text().split("## Kaggle", 1)[1].split("\n## ", 1)[0]
    paths = set(re.findall(r"/kaggle/working/ftd/([\w./-]+)", kaggle))
    installed = {ROOT / p for p in paths if (ROOT / p / "pyproject.toml").exists()}
    assert needed_by_the_worker() <= installed
    assert "services/gpu-worker/requirements-train.txt" in paths


def wheels_built_in(source: str, workspace: set[str]) -> set[str]:
    """The packages the `uv build` commands in backquotes (in comments too) build; `uv build`
    takes one --package, which must be a workspace package."""
    built: set[str] = set()
    flat = " ".join(line.lstrip("# ") for line in source.splitlines())
    for snippet in flat.split("`")[1::2]:
        for command in snippet.split("&&"):
            words = shlex.split(command)
            if words[:2] != ["uv", "build"]:
                continue
            packages = [words[i + 1] for i, w in enumerate(words) if w == "--package"]
            assert len(packages) == 1, command
            assert packages[0] in workspace, command
            built.add(packages[0])
    return built


def test_the_wheel_build_commands_it_documents_build_what_the_worker_needs() -> None:
    """In the notebook and in docs/workers.md alike: every workspace package the worker needs is
    built, and nothing else."""
    members = workspace_members()
    needed = {name for name, folder in members.items() if folder in needed_by_the_worker()}
    assert "ftd-workerlink" in needed
    in_notebook = "\n".join(text(c) for c in notebook()["cells"])
    for source in (in_notebook, WORKERS_DOC.read_text()):
        assert wheels_built_in(source, set(members)) == needed


def ftd_worker_commands() -> list[list[str]]:
    commands = []
    for source in code_cells():
        for node in ast.walk(ast.parse(python_only(source))):
            if isinstance(node, ast.List) and node.elts:
                first = node.elts[0]
                if isinstance(first, ast.Constant) and first.value == "ftd-worker":
                    commands.append([ast.literal_eval(e) for e in node.elts])
    return commands


def test_the_ftd_worker_commands_and_options_it_uses_exist() -> None:
    cli: Any = typer.main.get_command(app)  # a click group (typer vendors its own click)
    commands = ftd_worker_commands()
    assert ["ftd-worker", "hardware"] in commands
    assert any(c[:2] == ["ftd-worker", "run"] for c in commands)
    for command in commands:
        sub = cli.commands.get(command[1])
        assert sub is not None, f"ftd-worker has no command {command[1]!r}"
        options = {o for p in sub.params for o in (*p.opts, *p.secondary_opts)}
        for word in command[2:]:
            if word.startswith("-"):
                assert word.split("=")[0] in options, f"ftd-worker {command[1]} has no {word}"


# --- stopping the worker ----------------------------------------------------------------------------

FAKE_WORKER = """#!{python}
# Stands in for ftd-worker: records the signals it gets; SIGTERM ends it (as a real worker ends after
# handing its job back).
import signal, sys, time
log = {log!r}
def record(number, frame):
    with open(log, "a") as f:
        f.write(signal.Signals(number).name + "\\n")
    if number == signal.SIGTERM:
        sys.exit(0)
signal.signal(signal.SIGTERM, record)
signal.signal(signal.SIGINT, record)
with open(log, "a") as f:
    f.write("ready\\n")
while True:
    time.sleep(0.05)
"""


def wait_for(condition: Any, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _waiting_for_a_child(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/wchan").read_text().strip() == "do_wait"
    except OSError:
        return False


@contextlib.contextmanager
def kernel_running_the_worker_cell(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """The run cell executed by a Python process in its own process group, as Jupyter starts a
    kernel (its interrupt signals that group), with a stand-in ftd-worker on PATH."""
    log = tmp_path / "signals.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ftd-worker"
    fake.write_text(FAKE_WORKER.format(python=sys.executable, log=str(log)))
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    kernel = subprocess.Popen(
        [sys.executable, "-c", python_only(cell_starting("# 4."))],
        env=env,
        start_new_session=True,
        # A kernel takes Ctrl-C as KeyboardInterrupt, whatever the test runner inherited (a job
        # started in the background by a shell ignores SIGINT, and Python keeps that).
        preexec_fn=_interruptible,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert wait_for(lambda: log.exists() and "ready" in log.read_text(), timeout=120)
        # The worker reports ready as soon as it runs; the cell may not have reached its
        # `worker.wait()` yet (a stop before that is not what these tests are about): wait until
        # the kernel sleeps in wait4, as it does for as long as the worker runs.
        assert wait_for(lambda: _waiting_for_a_child(kernel.pid), timeout=120)
        yield kernel, log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(kernel.pid, signal.SIGKILL)
        kernel.wait(timeout=30)


def test_stopping_the_cell_sends_the_worker_one_sigterm(tmp_path: Path) -> None:
    with kernel_running_the_worker_cell(tmp_path) as (kernel, log):
        os.killpg(kernel.pid, signal.SIGINT)  # the stop button: Jupyter interrupts the kernel
        out, _ = kernel.communicate(timeout=120)
        assert kernel.returncode == 0, out
        assert "worker exited with 0" in out
        assert log.read_text().split() == ["ready", "SIGTERM"]


def test_a_killed_kernel_still_stops_the_worker(tmp_path: Path) -> None:
    with kernel_running_the_worker_cell(tmp_path) as (kernel, log):
        kernel.kill()  # a restarted or crashed runtime session
        kernel.wait(timeout=30)
        assert wait_for(lambda: "SIGTERM" in log.read_text())
        assert log.read_text().split() == ["ready", "SIGTERM"]
