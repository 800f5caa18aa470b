"""Runs the schemathesis CLI against a live service's /openapi.json (a subprocess, so its
hypothesis threads never share this test's event loop), for every service's conformance test."""

import asyncio
import os
import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
# Enough cases to cover every operation, status and parameter shape, small enough to stay well
# under two minutes a service on a loaded laptop.
MAX_EXAMPLES = int(os.environ.get("FTD_SCHEMATHESIS_EXAMPLES", "10"))
# A fixed seed: `make test` generates the same cases on every run (Hypothesis's advice for CI), so
# a red run is a change's fault and can be replayed. FTD_SCHEMATHESIS_SEED=random (or another
# number) explores new cases; a failure report prints the seed that found it.
SEED = os.environ.get("FTD_SCHEMATHESIS_SEED", "20261204")


async def run_schemathesis(
    openapi_url: str, config: str, workdir: Path, *, timeout: float = 280
) -> tuple[int, str]:
    """(exit status, report). `config`: the schemathesis.toml (headers per operation, ...); the
    generation table is added after it, so its top-level keys stay top-level."""
    config_file = workdir / "schemathesis.toml"
    config_file.write_text(f"{config}\n\n[generation]\nmax-examples = {MAX_EXAMPLES}\n")
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
        "--exclude-checks",
        "ignored_auth,object_level_authorization",
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "2",
        # Also bounds how long a live stream (SSE) is read before it is judged.
        "--request-timeout",
        "3",
        "--suppress-health-check",
        "all",
        *([] if SEED == "random" else ["--seed", SEED]),
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
