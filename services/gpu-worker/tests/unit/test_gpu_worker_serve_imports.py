"""ftd-serve runs on GPU boxes: it must not pull in the platform's server side."""

import subprocess
import sys

FORBIDDEN = ("sqlalchemy", "asyncpg", "messaging", "servicekit", "registry_service", "job_api")


def test_ftd_serve_imports_no_server_side_package() -> None:
    code = (
        "import sys, gpu_worker.serve.cli, gpu_worker.serve.app; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert loaded.isdisjoint(FORBIDDEN), loaded & set(FORBIDDEN)
