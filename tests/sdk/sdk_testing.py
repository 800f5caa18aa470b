"""Helpers of the SDK and CLI tests: training data, a small job, waiting, the `ftd` command,
and a TCP proxy that drops connections."""

import contextlib
import csv
import io
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ftd import Client, Dataset
from ftd_stack import Stack

T = TypeVar("T")

JOB_TIMEOUT_S = float(os.environ.get("FTD_E2E_JOB_TIMEOUT_S", "600"))
POSITIVE = ["I loved this film", "great value", "wonderful food", "a delight", "excellent"]
NEGATIVE = ["the food was cold", "terrible service", "broken on arrival", "a waste", "awful"]


def classifier_csv(path: Path, repeat: int = 3) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label"])
    rows = [[t, "positive"] for t in POSITIVE] + [[t, "negative"] for t in NEGATIVE]
    writer.writerows(rows * repeat)
    path.write_text(out.getvalue())
    return path


def offline_base_model(sdk: Client, job_type: str) -> str:
    catalogue = next(c for c in sdk.base_models() if c.job_type == job_type)
    offline = [m.id for m in catalogue.models if m.offline] or [m.id for m in catalogue.models]
    return offline[0]


def start_job(sdk: Client, tmp_path: Path, output: str, *, epochs: int = 2) -> Any:
    """A small classifier job on the stack's CPU worker (more epochs: longer)."""
    dataset = sdk.datasets.upload(classifier_csv(tmp_path / "reviews.csv"), job_type="classifier")
    assert isinstance(dataset, Dataset)
    return sdk.jobs.create(
        job_type="classifier",
        base_model=offline_base_model(sdk, "classifier"),
        training_data_url=dataset.training_data_url,
        output_model=output,
        gpu_provider="local",
        hyperparameters={
            "epochs": epochs,
            "batch_size": 4,
            "learning_rate": 5e-4,
            "eval_split": 0.2,
            "max_seq_length": 32,
        },
    )


def wait_for(check: Callable[[], T | None], stack: Stack, *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}\n{stack.log('worker')}"
    )


def ftd_command() -> str:
    found = shutil.which("ftd", path=str(Path(sys.executable).parent))
    assert found, "the ftd command is installed with the package"
    return found


class DroppingProxy:
    """A TCP proxy in front of the gateway that can cut every open connection at once: the
    network dropping a long-lived stream under the client."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.accepted = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self.accepted += 1
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop_all(self) -> int:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        return len(sockets) // 2

    def close(self) -> None:
        self.listener.close()
        self.drop_all()
