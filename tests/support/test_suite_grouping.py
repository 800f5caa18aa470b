"""`make test` runs pytest on several processes with `--dist loadgroup`, and the root conftest.py
puts each module's tests in one group, so that a module's stack (minutes to start) is started once.
This runs that conftest on a module of its own, in a pytest of its own on three processes, and
checks that the module's tests ran on one process after one set-up of its module fixture.

It failed on pytest 9.2 with pytest-xdist 3.8 (each test went to any process, and the fixture was
set up on every process that ran one of its tests) and with a conftest that looked only at the
controller's --dist (a worker sees dist "no")."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import os
from pathlib import Path

import pytest


def log(what):
    with Path(os.environ["PROBE_LOG"]).open("a") as f:
        f.write(f"{what} {os.environ.get('PYTEST_XDIST_WORKER')}\\n")


@pytest.fixture(scope="module")
def stack():
    log("setup")
    yield


@pytest.mark.parametrize("n", [1, 2, 3])
def test_one(stack, n):
    log("run")


def test_two(stack):
    log("run")


def test_three(stack):
    log("run")
"""


def test_a_modules_tests_share_one_process_and_one_set_up(tmp_path: Path) -> None:
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_probe_stack.py").write_text(PROBE)
    for n in range(6):  # others for the processes to take meanwhile
        (tmp_path / f"test_probe_other_{n}.py").write_text(f"def test_other_{n}():\n    pass\n")
    log = tmp_path / "probe.log"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "3",
            "--dist",
            "loadgroup",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PROBE_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = log.read_text().splitlines()
    setups = [line for line in lines if line.startswith("setup")]
    processes = {line.split()[1] for line in lines}
    assert all(p.startswith("gw") for p in processes), lines  # run by xdist's workers
    assert len(setups) == 1, lines
    assert len(processes) == 1, lines
    assert sum(line.startswith("run") for line in lines) == 5, lines
