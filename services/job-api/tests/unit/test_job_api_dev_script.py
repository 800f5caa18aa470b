"""`make dev` stops everything it started on SIGTERM, even when the signal comes twice (make
forwards its own SIGTERM to the script, which also gets one from the terminal's process group).
The process functions and traps of scripts/dev.sh run here around a stand-in service."""

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

DEV_SH = Path(__file__).resolve().parents[4] / "scripts" / "dev.sh"


def _functions(*names: str) -> str:
    text = DEV_SH.read_text()
    parts = []
    for name in names:
        match = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", text, re.S | re.M)
        assert match, name
        parts.append(match.group(0))
    traps = re.findall(r"^trap .*$", text, re.M)
    return "\n".join([*parts, *traps])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_twice_still_stops_every_service(tmp_path: Path) -> None:
    pid_file = tmp_path / "service.pid"
    harness = f"""
set -euo pipefail
LOG_DIR={tmp_path}
NAMES=()
PIDS=()
log() {{ :; }}
{_functions("start_service", "stop_all")}
# A service slow to stop (uvicorn waits for open streams): it ignores TERM, so only the
# KILL that stop_all sends after its grace period ends it.
start_service stand-in bash -c 'trap "" TERM; echo $$ > {pid_file}; exec sleep 300'
echo ready
while true; do sleep 0.1; done
"""
    process = subprocess.Popen(["bash", "-c", harness], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        service = int(pid_file.read_text())
        assert _alive(service)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)  # the second one, as `make` forwards it
        process.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _alive(service):
            assert time.monotonic() < deadline, "the service outlived make dev"
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
        if pid_file.exists() and pid_file.read_text().strip():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
