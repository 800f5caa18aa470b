"""The UI's browser tests (frontend/e2e/flows.test.mjs, Debian's chromium) as one test of the suite,
so that the suite's processes run them beside the rest: exactly what `make ui-e2e` runs
(tests/e2e/ftd_stack.py as a script: the whole platform with the built UI and a CPU worker on free
ports, then the flows against it). The UI is built into a folder of this test's own
(FTD_UI_OUT_DIR, read by frontend/svelte.config.js), so a build elsewhere (`make dev`'s) cannot
change the files it serves mid-run. Screenshots go to frontend/e2e-output, as with `make ui-e2e`."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from browser import require_browser, skip_without_browser
from ftd_stack import FRONTEND, ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    skip_without_browser,
]


def test_every_ui_flow_passes_in_chromium_against_the_whole_platform(tmp_path: Path) -> None:
    require_browser()
    logs = tmp_path / "logs"
    build = FRONTEND / ".private-builds" / f"ui-e2e-{uuid.uuid4().hex[:8]}"
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "tests/e2e/ftd_stack.py"), "--keep-logs", str(logs)],
            env={**os.environ, "FTD_UI_OUT_DIR": str(build)},
            capture_output=True,
            text=True,
            timeout=1700,
            check=False,
        )
    finally:
        shutil.rmtree(build, ignore_errors=True)
    print("\n".join(result.stdout.splitlines()[-15:]))  # the spec reporter's counts
    # stdout is the UI build and the flows' spec report (which names the failing step); stderr the
    # stack's own lines and, on a failure, each process's last log lines.
    assert result.returncode == 0, (
        f"{result.stdout[-14000:]}\n--- the stack (stderr)\n{result.stderr[-8000:]}"
    )
