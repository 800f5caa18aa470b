"""The model-server image can load models: deploy/docker/python-service.Dockerfile installs the
inference stack (not in uv.lock) for model-server by default, CPU torch from the PyTorch index
unless told otherwise, the rest from requirements-inference.txt at the worker's versions. Checked
against the repository without docker."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
DOCKERFILE = ROOT / "deploy/docker/python-service.Dockerfile"
IGNORE = ROOT / "deploy/docker/python-service.Dockerfile.dockerignore"
REQUIREMENTS = ROOT / "services/model-server/requirements-inference.txt"
STACK = {"sentence-transformers", "transformers", "peft", "accelerate"}


def joined() -> list[str]:
    """The Dockerfile's lines, continuation lines joined, comments out."""
    lines, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not pending and not line):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append((pending + line).strip())
        pending = ""
    return lines


def args() -> dict[str, str]:
    found = {}
    for line in joined():
        if line.startswith("ARG "):
            name, _, value = line[4:].partition("=")
            found[name] = value
    return found


def run_with(text: str) -> list[str]:
    return [line for line in joined() if line.startswith("RUN") and text in line]


def inference_run() -> str:
    """The stack's own layer: torch, then the stack, before the workspace's code is copied."""
    [run] = run_with('"${TORCH_SPEC}"')
    assert "requirements-inference" in run
    return run


def final_run() -> str:
    """The service from uv.lock, then the stack's requirements once more and an import check."""
    [run] = run_with("uv sync")
    assert "requirements-inference" in run
    return run


def service_gate(run: str) -> str:
    gate = re.search(r"case .*? esac;", run)
    assert gate is not None
    return gate.group(0)


@pytest.mark.parametrize(
    ("inference", "service", "installs"),
    [
        ("auto", "model-server", True),
        ("auto", "job-api", False),
        ("0", "model-server", False),
        ("1", "registry-service", True),
    ],
)
def test_the_stack_is_installed_for_model_server_by_default(
    inference: str, service: str, installs: bool
) -> None:
    assert args()["INFERENCE"] == "auto"
    # The RUNs' own gate (the same in both), run by a shell with the build args as environment.
    gate = service_gate(inference_run())
    assert service_gate(final_run()) == gate
    result = subprocess.run(
        ["sh", "-c", gate + " echo install"],
        env={"INFERENCE": inference, "SERVICE": service, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert ("install" in result.stdout) is installs


def test_a_wrong_inference_value_fails_the_build() -> None:
    [check] = run_with("INFERENCE must be")
    gate = re.search(r'case "\$\{INFERENCE\}" in .*? esac', check)
    assert gate is not None
    result = subprocess.run(
        ["sh", "-c", gate.group(0)],
        env={"INFERENCE": "yes", "SERVICE": "model-server", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "auto, 1 or 0" in result.stderr


def test_cpu_torch_by_default_then_the_pinned_stack_and_an_import_check() -> None:
    values = args()
    assert values["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert values["TORCH_SPEC"] == "torch==2.13.0"
    run = inference_run()
    index_at = run.index('--index-url "${TORCH_INDEX_URL}"')
    torch_at = run.index('"${TORCH_SPEC}"')
    stack_at = run.index("-r services/model-server/requirements-inference.txt")
    assert index_at < torch_at < stack_at, "torch first, so the stack keeps the CPU build"
    assert "import torch, transformers, sentence_transformers, peft" in final_run()
    # The same torch the training stack is installed with (scripts/install-training.sh).
    script = (ROOT / "scripts/install-training.sh").read_text()
    assert f'TORCH_SPEC="${{TORCH_SPEC:-{values["TORCH_SPEC"]}}}"' in script


def test_the_requirements_pin_the_workers_versions_and_reach_the_build() -> None:
    text = REQUIREMENTS.read_text()
    [constraint] = re.findall(r"^-c (\S+)$", text, re.MULTILINE)
    pins_file = (REQUIREMENTS.parent / constraint).resolve()
    assert pins_file == ROOT / "services/gpu-worker/requirements-train.txt"
    names = {
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    }
    assert names == STACK
    pins = dict(
        line.split("==", 1)
        for line in pins_file.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert set(pins) >= STACK, "every package of the stack has the worker's pin"
    assert "torch" not in names, "torch comes from the PyTorch index, first"
    # Both files are in the build context (`COPY services ./services`, nothing ignored there).
    ignored = IGNORE.read_text().splitlines()
    assert "COPY services ./services" in joined()
    assert not any(p.strip() in {"services", "services/", "**/*.txt", "*.txt"} for p in ignored)
