"""`make dev` itself, for the tests that must drive the platform the way the README tells a new
user to start it: the README's tour, the SDK and CLI, the `openai` package's fine-tuning example.

It runs the real command (`make dev`: install, migrations, every service, the nginx gateway, the
built UI and the enrolled CPU worker, scripts/dev.sh) beside anything else on the machine, with the
three settings dev.sh offers for that: FTD_DEV_PORT (a free block of seven ports instead of 8000 to
8006), FTD_DEV_DIR (its state in a scratch folder instead of the checkout's .dev) and
FTD_DATABASE_NAME + FTD_BROKER_PREFIX (a database and a broker namespace of its own). Secrets come
from the environment, as dev.sh allows, so the test can mint tokens. Everything it made is removed
afterwards: the processes (SIGTERM, which dev.sh answers by stopping all it started), the
database, the broker namespace and the worker's broker user.

    with dev_stack(tmp_path) as stack:   # a Stack, as full_stack gives
        httpx.get(stack.base_url + "/api/finetune/jobs", headers=stack.headers("alice"))
"""

import asyncio
import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ftd_stack import (
    ADMIN_DSN,
    AMQP_URL,
    FRONTEND,
    MANAGEMENT_URL,
    ROOT,
    Stack,
    _drop_broker_namespace,
    _drop_worker_users,
    _worker_consuming,
)
from ftd_stack import _stop as stop_process

# What `make dev` may take on a cold machine: it installs, migrates and builds the UI first.
START_TIMEOUT_S = float(os.environ.get("FTD_TEST_DEV_START_TIMEOUT", "600"))
BANNER = "Finetune Dispatcher is running."
# The CPU worker of `make dev` takes these (services/gpu-worker adapters/hardware.py).
DEV_WORKER_JOB_TYPES = ("embedding", "classifier", "llm_lora")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(size: int = 7) -> int:
    """The first port of `size` consecutive free ones (dev.sh's gateway and the six above it)."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - size)
        if all(_free(base + i) for i in range(size)):
            return base
    raise RuntimeError(f"no block of {size} free ports found")


async def _drop_database(name: str) -> None:
    from servicekit.db import drop_database

    # The services' login roles (job_api, data_service, ...) are shared by every `make dev` on
    # this machine: only the database goes.
    await drop_database(ADMIN_DSN, name, roles=[])


def _stop(proc: "subprocess.Popen[bytes]", root: Path, grace: float = 60) -> None:
    """SIGTERM, as a terminal's close or `kill` stops it (dev.sh stops everything it started).
    Not Ctrl-C's SIGINT: a shell started in the background ignores SIGINT, and so does every
    process it starts, dev.sh too (CI runs `make test` that way). dev.sh starts each service in
    its own session, so whatever outlives it (it was killed at the deadline) is found by the
    scratch folder in its environment or on its command line (nginx clears its environment)."""
    stop_process(proc, grace=grace)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = _processes_of(root)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = _processes_of(root)
        if not left:
            return


def _processes_of(root: Path) -> list[int]:
    """The processes this `make dev` started: FTD_DEV_DIR=<root> in their environment, or the
    scratch folder on their command line."""
    marker = f"FTD_DEV_DIR={root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker in environ or str(root).encode() + b"/" in cmdline:
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def dev_stack(
    root: Path, *, worker_job_types: Sequence[str] = DEV_WORKER_JOB_TYPES
) -> Iterator[Stack]:
    root.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(4)
    prefix = f"dev{tag}."
    database = f"ftd_devtest_{tag}"
    port = free_port_block()
    jwt_secret = secrets.token_urlsafe(32)
    worker_key = secrets.token_urlsafe(32)
    # Its UI built and previewed from a folder of its own (frontend/svelte.config.js): another
    # `make dev` or the browser tests' stack may build at the same time.
    ui_build = FRONTEND / ".private-builds" / f"make-dev-{tag}"
    env = {
        **os.environ,
        "FTD_UI_OUT_DIR": str(ui_build),
        "FTD_DEV_PORT": str(port),
        "FTD_DEV_DIR": str(root),
        "FTD_DATABASE_NAME": database,
        "FTD_BROKER_PREFIX": prefix,
        "FTD_JWT_SECRET": jwt_secret,
        "FINETUNE_WORKER_KEY": worker_key,
        "FTD_DEV_WORKER_NAME": f"devtest-cpu-{tag}",
        "FTD_AMQP_URL": AMQP_URL,
        "FTD_BROKER_MANAGEMENT_URL": MANAGEMENT_URL,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "WANDB_MODE": "disabled",
        "TOKENIZERS_PARALLELISM": "false",
        # Reports every half second: a short CPU job still draws a curve while it is watched.
        "FTD_WORKER_PROGRESS_INTERVAL": "0.5",
        "JOB_API_PRESENCE_INTERVAL": "1",
        "FTD_HEALTH_TIMEOUT": "180",
    }
    # Never a developer's own settings: the test names every secret and address itself.
    for key in ("HF_TOKEN", "FTD_WORKER_HF_TOKEN", "WANDB_API_KEY", "MAKEFLAGS", "MAKELEVEL"):
        env.pop(key, None)
    out_path = root / "make-dev.out"
    out = out_path.open("wb")
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "dev"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack = Stack(
        base_url=f"http://127.0.0.1:{port}",
        jwt_secret=jwt_secret,
        worker_key=worker_key,
        root=root,
        model_store=root / "models",
        env=env,
        processes={"make-dev": proc},
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while BANNER not in out_path.read_text(errors="replace"):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"make dev exited with {proc.returncode}:\n{_tail(out_path, 80)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"make dev not up in {START_TIMEOUT_S:.0f}s:\n{_tail(out_path)}")
            time.sleep(1)
        asyncio.run(_worker_consuming(prefix, worker_job_types, proc))
        yield stack
    finally:
        _stop(proc, root)
        out.close()
        with contextlib.suppress(Exception):
            asyncio.run(_drop_broker_namespace(prefix))
        with contextlib.suppress(Exception):
            asyncio.run(_drop_worker_users(prefix))
        asyncio.run(_drop_database(database))
        shutil.rmtree(ui_build, ignore_errors=True)


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
