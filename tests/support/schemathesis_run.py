"""Runs the schemathesis CLI against a live service's /openapi.json (a subprocess, so its
hypothesis threads never share this test's event loop), for every service's conformance test and
for the run of all three through the gateway (tests/security)."""

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
# Enough cases to cover every operation, status and parameter shape, small enough to stay well
# under two minutes a service on a loaded laptop.
MAX_EXAMPLES = int(os.environ.get("FTD_SCHEMATHESIS_EXAMPLES", "10"))
# A fixed seed: `make test` generates the same cases on every run (Hypothesis's advice for CI), so
# a red run is a change's fault and can be replayed. FTD_SCHEMATHESIS_SEED=random (or another
# number) explores new cases; a failure report prints the seed that found it.
SEED = os.environ.get("FTD_SCHEMATHESIS_SEED", "20261204")


# The checks a service's own run leaves out: they need several identities (the run through the
# gateway gives them two users and a worker and runs every check).
AUTH_CHECKS = ("ignored_auth", "object_level_authorization")


async def run_schemathesis(
    openapi_url: str,
    config: str,
    workdir: Path,
    *,
    timeout: float = 280,
    max_examples: int = MAX_EXAMPLES,
    exclude_checks: tuple[str, ...] = AUTH_CHECKS,
    base_url: str | None = None,
    request_timeout: float = 3,
    args: Sequence[str] = (),
) -> tuple[int, str]:
    """(exit status, report). `config`: the schemathesis.toml (headers per operation, ...); the
    generation table is added after it, so its top-level keys stay top-level. `base_url`: where
    the operations are (default: the document's own host); `args`: more of the CLI's options
    (operation filters)."""
    config_file = workdir / "schemathesis.toml"
    config_file.write_text(f"{config}\n\n[generation]\nmax-examples = {max_examples}\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        str(config_file),
        "run",
        openapi_url,
        "--checks",
        "all",
        *(["--exclude-checks", ",".join(exclude_checks)] if exclude_checks else []),
        *(["--url", base_url] if base_url else []),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "2",
        # Also bounds how long a live stream (SSE) is read before it is judged.
        "--request-timeout",
        str(request_timeout),
        "--suppress-health-check",
        "all",
        *([] if SEED == "random" else ["--seed", SEED]),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
            "PYTHONPATH": os.pathsep.join([str(SUPPORT), os.environ.get("PYTHONPATH", "")]),
        },
        cwd=workdir,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        return -1, out.decode() + f"\n(schemathesis still running after {timeout:.0f} s)"
    assert process.returncode is not None
    return process.returncode, out.decode()
