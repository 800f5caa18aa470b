"""Whether the browser tests can run here (Debian's chromium driven by the UI's playwright-core,
never a downloaded browser), and the marks that skip them where they cannot, unless
FTD_REQUIRE_BROWSER is set (`make test` sets it: there a missing browser fails the run instead of
passing it silently)."""

import os
import shutil
from pathlib import Path

import pytest
from ftd_stack import FRONTEND

CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
NODE = shutil.which("node")


def _missing_browser() -> str | None:
    """Why the browser half cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if NODE is None or not (FRONTEND / "node_modules/playwright-core").is_dir():
        return "node and the UI's dependencies (npm --prefix frontend ci) are needed"
    return None


MISSING_BROWSER = _missing_browser()
BROWSER_REQUIRED = os.environ.get("FTD_REQUIRE_BROWSER", "").strip().lower() not in (
    "",
    "0",
    "false",
    "no",
)
# For a module's pytestmark: skip where the browser is missing and not required.
skip_without_browser = pytest.mark.skipif(
    MISSING_BROWSER is not None and not BROWSER_REQUIRED, reason=str(MISSING_BROWSER)
)


def require_browser() -> None:
    """Fail the test if the browser is missing (reached only when it is required)."""
    if MISSING_BROWSER is not None:
        pytest.fail(f"FTD_REQUIRE_BROWSER is set but {MISSING_BROWSER}")
