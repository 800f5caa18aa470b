"""services/gpu-worker/Dockerfile, checked against the repository without docker: what it copies
exists and gets through its .dockerignore, it installs the worker from uv.lock and the training stack
(CUDA torch included) from outside it, runs `ftd-worker run` as a non-root user, and bakes in no
secret."""

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
DOCKERFILE = ROOT / "services/gpu-worker/Dockerfile"
IGNORE = ROOT / "services/gpu-worker/Dockerfile.dockerignore"  # BuildKit's per-Dockerfile ignore
SECRET_NAME = re.compile(r"TOKEN|KEY|PASSWORD|SECRET|PASSWD|CREDENTIAL", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def words(self) -> list[str]:
        """The exec (JSON) form's list, or the shell form's words without --flags."""
        if self.arguments.startswith("["):
            parsed: list[str] = json.loads(self.arguments)
            return parsed
        return [w for w in shlex.split(self.arguments) if not w.startswith("--")]


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Dockerfile instructions: continuation lines joined, comments (and parser directives) out."""
    found, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, arguments = whole.partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


def of(keyword: str) -> list[Instruction]:
    return [i for i in instructions() if i.keyword == keyword]


def assignments(instruction: Instruction) -> dict[str, str]:
    """ENV/ARG key=value pairs (a bare ARG name has the value "")."""
    pairs = {}
    for word in shlex.split(instruction.arguments):
        key, _, value = word.partition("=")
        pairs[key] = value
    return pairs


def ignored(relative: str) -> bool:
    """Whether the Dockerfile's .dockerignore keeps `relative` (or a folder above it) out of the
    build context. Enough of the syntax for this file: globs, `**/` prefixes, no `!` exceptions."""
    patterns = [
        line.strip()
        for line in IGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(p.startswith("!") for p in patterns), "extend ignored() for ! exceptions"
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(
                prefix.rsplit("/", 1)[-1], pattern[3:]
            ):
                return True
    return False


def run_commands() -> str:
    return "\n".join(i.arguments for i in of("RUN"))


def test_every_copy_source_exists_and_reaches_the_build_context() -> None:
    copies = of("COPY") + of("ADD")
    assert copies
    for copy in copies:
        *sources, _destination = copy.words()
        assert sources
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not ignored(source), f"COPY {source}: excluded by {IGNORE.name}"
    # What the worker's install needs once copied.
    for needed in (
        "pyproject.toml",
        "uv.lock",
        "libs/contracts/src/contracts/__init__.py",
        "services/gpu-worker/pyproject.toml",
        "services/gpu-worker/src/gpu_worker/entrypoints/cli.py",
        "services/gpu-worker/requirements-train.txt",
    ):
        assert (ROOT / needed).exists()
        assert not ignored(needed), needed


def test_the_ignore_file_keeps_keys_and_local_state_out() -> None:
    for private in (
        "deploy/tls/server-key.pem",
        "services/gpu-worker/.env",
        "libs/contracts/client.key",
        ".venv/bin/python",
        "services/gpu-worker/src/gpu_worker/entrypoints/__pycache__/cli.cpython-311.pyc",
        "frontend/node_modules/x/index.js",
    ):
        assert ignored(private), private


def test_the_worker_comes_from_uv_lock_and_the_training_stack_from_outside_it() -> None:
    commands = run_commands()
    # --inexact: the training stack, installed in the layer before, stays.
    assert "uv sync --frozen --no-dev --inexact --package gpu-worker" in commands
    assert "-r services/gpu-worker/requirements-train.txt" in commands
    # torch: from the CUDA wheel index, the version scripts/install-training.sh installs.
    args = {k: v for i in of("ARG") for k, v in assignments(i).items()}
    assert args["TORCH_INDEX_URL"].startswith("https://download.pytorch.org/whl/cu")
    install = re.search(
        r'--index-url "\$\{TORCH_INDEX_URL\}"(.*?)"\$\{TORCH_SPEC\}"', commands, re.S
    )
    assert install is not None, "torch is installed from TORCH_INDEX_URL"
    # Only a local wheel folder may come between (TORCH_FIND_LINKS, for builds without the index).
    assert install.group(1).strip() in (
        "",
        '${TORCH_FIND_LINKS:+--find-links "${TORCH_FIND_LINKS}"}',
    )
    script = (ROOT / "scripts/install-training.sh").read_text()
    assert f'TORCH_SPEC="${{TORCH_SPEC:-{args["TORCH_SPEC"]}}}"' in script
    # ... and never from uv.lock, whose resolution is training-free.
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {p["name"] for p in lock["package"]}
    assert "torch" not in locked
    assert "gpu-worker" in locked
    assert "ftd-contracts" in locked
    assert (
        re.search(
            r"^torch\b", (ROOT / "services/gpu-worker/requirements-train.txt").read_text(), re.M
        )
        is None
    )


def test_base_image_and_uv_match_the_workspace() -> None:
    base = of("FROM")[0].words()[0]
    worker = tomllib.loads((ROOT / "services/gpu-worker/pyproject.toml").read_text())
    assert worker["project"]["requires-python"] == ">=3.11,<3.12"
    args = {k: v for i in of("ARG") for k, v in assignments(i).items()}
    # The base is a build argument (a local Debian base where no image can be pulled); by default
    # the official Python 3.11 image.
    if base.startswith("${"):
        base = args[base.strip("${}")]
    assert base.startswith("python:3.11")
    service = ROOT / "deploy/docker/python-service.Dockerfile"
    service_args = {
        k: v for i in instructions(service) if i.keyword == "ARG" for k, v in assignments(i).items()
    }
    assert args["UV_VERSION"] == service_args["UV_VERSION"]


def test_it_runs_ftd_worker_run_as_a_non_root_user() -> None:
    (entrypoint,) = of("ENTRYPOINT")
    assert entrypoint.arguments.startswith("["), "exec form, so SIGTERM reaches the worker"
    assert entrypoint.words() == ["ftd-worker", "run"]
    assert of("CMD") == []
    users = of("USER")
    assert users
    user = users[-1].arguments.split(":")[0]
    assert user not in ("root", "0")
    assert re.search(rf"useradd\b[^&;]*\s{re.escape(user)}\b", run_commands())
    assert [i.arguments for i in of("STOPSIGNAL")] == ["SIGTERM"]
    assert of("EXPOSE") == [], "the worker dials out; it needs no inbound port"


def test_no_secret_is_baked_in() -> None:
    for instruction in of("ENV") + of("ARG"):
        for key, value in assignments(instruction).items():
            if SECRET_NAME.search(key):
                assert value == "", f"{instruction.keyword} {key} has a value in the image"
            assert not re.search(r"://[^/\s:@]+:[^@\s]+@", value), f"credentials in {key}"
    for copy in of("COPY") + of("ADD"):
        for source in copy.words()[:-1]:
            assert not re.search(r"\.(pem|key|env)$|tls|secret", source), source
