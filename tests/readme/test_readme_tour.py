"""The README's tour, run as a new user runs it: its bash blocks, in order, in one shell.

Which blocks run. Every fenced ```bash block under the tour's sections ("Quick tour with curl" with
its subsections "Bring your own worker", "Live updates" and "From code"; "Use your model";
"Webhooks") carries a marker on the line before it, an HTML comment the rendered README does not
show: `<!-- tour: run -->`, or `<!-- tour: skip (why) -->` for a block a test cannot run as
written: one that starts a long-running process (`make dev` itself, a worker of your own in
a third terminal) or follows an event stream that never ends (`curl -N`). A tour block with no
marker fails the test, so a new block is a decision, not an oversight. The marked blocks run
concatenated, in README order, in one `bash` with `set -euo pipefail` (variables carry from one
block to the next, as in the user's terminal); each command's text is the README's.

What it runs against. `make dev` itself (tests/e2e/dev_stack.py, one for the session): the
command the README starts with, run from this checkout, with the settings scripts/dev.sh offers to
run beside a developer's own `make dev`: a free block of seven ports instead of 8000 to 8006, its
state in a scratch folder instead of .dev, a database and a broker namespace of its own, and the
secrets from the environment. The commands get what dev.sh gives the user:

- a folder standing in for the repository's root, the commands' working directory: the
  repository's Makefile (so `make -s token SUB=alice` is the real target) and `.dev/secrets.env`
  holding the stack's FTD_JWT_SECRET and FINETUNE_WORKER_KEY, as dev.sh writes it; `uv` is
  pointed at the workspace (UV_PROJECT), without syncing it;
- `http://localhost:8000` in a command is the stack's gateway (the only text changed), and
  FTD_BASE_URL says the same to `ftd`;
- the standard input holds the token `ftd login` asks for (what the user pastes).

A block fails the test when a command exits non-zero, and also on an HTTP error: `curl -s` exits
0 on a 4xx or 5xx, so the shell's `curl` is a function that runs the real one and fails on a
status >= 400 (the tour expects none). One tiny embedding model is trained (the tour's
`alice/custom-embedding`); the rest of the tour uses it.
"""

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from ftd_stack import ROOT, Stack

pytest.importorskip("torch", reason="the training stack is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.training, pytest.mark.timeout(600)]

README = ROOT / "README.md"
TOUR_SECTIONS = ("Quick tour with curl", "Use your model", "Webhooks")
PUBLIC_URL = "http://localhost:8000"
MARKER = re.compile(r"<!--\s*tour:\s*(run|skip\s*\((?P<why>[^)]+)\))\s*-->")
TOUR_TIMEOUT_S = 480

# Fails the block on an HTTP error, printing the body as curl would have.
PREAMBLE = r"""
set -euo pipefail
trap 'echo "tour: block $BLOCK failed at: $BASH_COMMAND" >&2' ERR
curl() {
  local out url="" arg
  for arg in "$@"; do case $arg in http://* | https://*) url=$arg ;; esac; done
  out=$(command curl -w '\n%{http_code}' "$@") || return
  local code=${out##*$'\n'}
  out=${out%$'\n'*}
  [ -z "$out" ] || printf '%s\n' "$out"
  if [ "$code" -ge 400 ]; then
    echo "tour: HTTP $code from $url: $out" >&2
    return 22
  fi
}
"""


@dataclass(frozen=True)
class Block:
    section: str
    line: int
    code: str
    run: bool
    why: str | None


def tour_blocks(text: str) -> list[Block]:
    """The ```bash blocks under the tour's `##` sections (their `###` subsections included),
    each with the marker on the line before its fence."""
    blocks: list[Block] = []
    lines = text.splitlines()
    section: str | None = None
    subsection = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip() if line[3:].strip() in TOUR_SECTIONS else None
            subsection = line[3:].strip()
        elif line.startswith("### "):
            subsection = line[4:].strip()
        elif line.startswith("```"):
            end = lines.index("```", i + 1)
            if section and line.strip() == "```bash":
                previous = next((p for p in reversed(lines[:i]) if p.strip()), "")
                marker = MARKER.fullmatch(previous.strip())
                assert marker, (
                    f"README.md line {i + 1} ({subsection}): a tour block needs "
                    "<!-- tour: run --> or <!-- tour: skip (why) --> on the line before it"
                )
                blocks.append(
                    Block(
                        section=subsection,
                        line=i + 1,
                        code="\n".join(lines[i + 1 : end]),
                        run=marker.group(1) == "run",
                        why=marker.group("why"),
                    )
                )
            i = end
        i += 1
    return blocks


def tour_script(blocks: list[Block], base_url: str) -> str:
    parts = [PREAMBLE]
    for n, block in enumerate(b for b in blocks if b.run):
        parts.append(f"BLOCK='{n} ({block.section}, README.md line {block.line})'")
        parts.append('echo "tour: block $BLOCK" >&2')
        parts.append(block.code.replace(PUBLIC_URL, base_url))
    return "\n".join(parts) + "\n"


def test_the_marker_rule_is_applied_to_every_tour_block() -> None:
    blocks = tour_blocks(README.read_text())
    sections = {b.section for b in blocks}
    assert {"Quick tour with curl", "From code", "Use your model", "Webhooks"} <= sections
    assert any(b.run for b in blocks)
    for block in blocks:
        assert block.run or block.why, block
        if "make dev" in block.code.split("#")[0] or "curl -N" in block.code:
            assert not block.run, f"README.md line {block.line} starts a long-running process"
    skipped = [b for b in blocks if not b.run]
    assert any("ftd-worker run" in b.code for b in skipped)


def test_a_tour_block_without_a_marker_is_refused() -> None:
    text = "## Webhooks\n\nRegister one:\n\n```bash\ncurl -s http://localhost:8000/healthz\n```\n"
    with pytest.raises(AssertionError, match=re.escape("README.md line 5 (Webhooks)")):
        tour_blocks(text)
    marked = text.replace("```bash", "<!-- tour: skip (an example) -->\n```bash")
    assert tour_blocks(marked) == [
        Block("Webhooks", 6, "curl -s http://localhost:8000/healthz", run=False, why="an example")
    ]
    # Outside the tour's sections a block needs no marker.
    assert tour_blocks(text.replace("## Webhooks", "## Layout")) == []


@pytest.fixture(scope="module")
def stack(dev_platform: Stack) -> Stack:
    """`make dev` itself, started once for the session (tests/conftest.py)."""
    return dev_platform


def user_folder(stack: Stack, where: Path) -> dict[str, str]:
    """The stand-in for the repository's root after `make dev`, and the user's environment."""
    (where / ".dev").mkdir(parents=True)
    (where / "home").mkdir()
    (where / "Makefile").symlink_to(ROOT / "Makefile")
    secrets = where / ".dev" / "secrets.env"
    secrets.write_text(
        f"FTD_JWT_SECRET={stack.jwt_secret}\nFINETUNE_WORKER_KEY={stack.worker_key}\n"
    )
    secrets.chmod(0o600)
    venv_bin = str(Path(sys.executable).parent)
    uv = shutil.which("uv")
    assert uv, "uv is installed (make install)"
    path = os.pathsep.join([venv_bin, str(Path(uv).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    return {
        "PATH": path,
        "HOME": str(where / "home"),
        "LANG": "C.UTF-8",
        "COLUMNS": "160",
        "UV_PROJECT": str(ROOT),
        "UV_NO_SYNC": "1",
        "FTD_BASE_URL": stack.base_url,
        "HF_HUB_OFFLINE": "1",
    }


def run_tour(
    script: str, cwd: Path, env: dict[str, str], stdin: str = ""
) -> "subprocess.CompletedProcess[str]":
    path = cwd.parent / "tour.sh"
    path.write_text(script)
    return subprocess.run(
        ["bash", str(path)],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TOUR_TIMEOUT_S,
        start_new_session=True,  # no terminal: `ftd login` reads the token from stdin
        check=False,
    )


def test_an_http_error_fails_the_block(stack: Stack, tmp_path: Path) -> None:
    env = user_folder(stack, tmp_path / "checkout")
    block = Block(
        "Quick tour with curl",
        1,
        "TOKEN=$(make -s token SUB=alice)\n"
        'curl -s http://localhost:8000/api/finetune/jobs -H "Authorization: Bearer $TOKEN" | jq -c .\n'
        "curl -s http://localhost:8000/api/finetune/jobs/not-a-job "
        '-H "Authorization: Bearer $TOKEN" | jq .\n'
        "echo unreachable",
        run=True,
        why=None,
    )
    done = run_tour(tour_script([block], stack.base_url), tmp_path / "checkout", env)
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert '{"data":[' in done.stdout, (done.stdout, done.stderr)  # the token worked
    assert "unreachable" not in done.stdout
    assert "tour: HTTP 4" in done.stderr
    assert "/api/finetune/jobs/not-a-job" in done.stderr


def test_the_tour_runs_as_written(stack: Stack, tmp_path: Path) -> None:
    blocks = tour_blocks(README.read_text())
    env = user_folder(stack, tmp_path / "checkout")
    token = stack.token("alice", ttl_seconds=3600)
    # The standard input is what the user pastes when `ftd login` asks.
    done = run_tour(
        tour_script(blocks, stack.base_url), tmp_path / "checkout", env, stdin=token + "\n"
    )
    report = f"stdout:\n{done.stdout[-6000:]}\nstderr:\n{done.stderr[-6000:]}"
    assert done.returncode == 0, f"{report}\nworker log:\n{stack.log('worker', 30)}"
    # What the tour says the user sees.
    assert '"reason": "no_worker"' in done.stdout, report
    assert "ftd-worker run" in done.stdout, report
    assert '"completed"' in done.stdout, report
