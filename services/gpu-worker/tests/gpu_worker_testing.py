"""Helpers for the worker's tests (importable: pytest's `pythonpath` lists this folder): a fake
trainer that behaves like the real ones towards the runtime (steps, progress, should_stop,
checkpoints, resume, bad data), a fake publisher and checkpoint store, and an HTTP server that
serves datasets the way data-service does (a download URL with a ticket)."""

import contextlib
import csv
import hashlib
import io
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from contracts.rpc import JobSpec
from contracts.store import local_uri
from gpu_worker.adapters.publish.local_store import model_folder
from gpu_worker.domain.errors import StopRequested, UserDataError
from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult


def read_rows(path: Path, data_format: str) -> list[dict[str, Any]]:
    import json

    text = path.read_text(encoding="utf-8")
    if data_format == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise UserDataError(f"line {number} is not valid JSON") from None
        return rows
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "text" not in reader.fieldnames:
        raise UserDataError("the CSV file needs a `text` column")
    return list(reader)


@dataclass
class FakeTrainer:
    """`steps` optimizer steps; holds before step `hold_at` until `release` is set (or a stop is
    asked), so a test acts mid-training without sleeping."""

    steps: int = 10
    hold_at: int | None = None
    release: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    requests: list[TrainRequest] = field(default_factory=list)
    stopped_at: list[int] = field(default_factory=list)

    checkpoint_every: int | None = None

    def _checkpoint(self, req: TrainRequest, step: int) -> Path:
        """Like the Trainer: `checkpoint-N/`, trainer_state.json written last."""
        folder = req.checkpoints_dir / f"checkpoint-{step}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "step").write_text(str(step))
        (folder / "trainer_state.json").write_text(f'{{"global_step": {step}}}')
        return folder

    def _stop(self, req: TrainRequest, step: int) -> StopRequested:
        self.stopped_at.append(step)
        return StopRequested(self._checkpoint(req, step) if step else None)

    def __call__(self, req: TrainRequest, reporter: Reporter) -> TrainResult:
        self.requests.append(req)
        rows = read_rows(req.data_path, req.data_format)
        if not rows:
            raise UserDataError("the training file has no rows")
        start = int((req.resume_from / "step").read_text()) if req.resume_from else 0
        done = start
        for step in range(start + 1, self.steps + 1):
            if reporter.should_stop():
                raise self._stop(req, done)
            if step == self.hold_at:
                self.holding.set()
                while not self.release.wait(0.01):
                    if reporter.should_stop():
                        raise self._stop(req, done)
            if self.checkpoint_every and step % self.checkpoint_every == 0:
                self._checkpoint(req, step)
            reporter.progress(
                progress=100 * step / self.steps,
                step=step,
                total_steps=self.steps,
                epoch=step / self.steps,
                loss=1 / step,
                metrics={"learning_rate": 1e-4},
                log_lines=[f"step {step}"],
            )
            done = step
        model_dir = req.work_dir / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "weights.txt").write_text(f"{len(rows)} rows, {self.steps} steps")
        return TrainResult(
            model_dir=model_dir,
            metrics={"loss": 1 / self.steps},
            baseline_metrics={"loss": 1.0},
            data_stats={"rows": len(rows), "resumed_from_step": start},
        )


@dataclass(frozen=True)
class Published:
    store: str
    repo_id: str
    revision: str
    uri: str
    created_repo: bool = False


@dataclass
class FakePublisher:
    """Stores into the local store's layout (the owner's folder), as publish_model does;
    `created_repo` is what it reports about the repository; `specs` the claims it was given."""

    store_dir: Path
    fail_times: int = 0
    calls: int = 0
    created_repo: bool = False
    specs: list[JobSpec] = field(default_factory=list)
    # With `hold` set, a push waits (`pushing` set) until `release` is: a slow upload.
    hold: bool = False
    pushing: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, result: TrainResult, req: TrainRequest, spec: JobSpec) -> Published:
        self.calls += 1
        self.specs.append(spec)
        if self.hold:
            self.pushing.set()
            self.release.wait(120)
        if self.calls <= self.fail_times:
            raise ConnectionError("the Hub is unreachable")
        revision = uuid.uuid4().hex[:12]
        target = model_folder(self.store_dir, spec.owner_key, req.output_model, revision)
        shutil.copytree(result.model_dir, target)
        uri = local_uri(req.output_model, revision)
        return Published("local", req.output_model, revision, uri, self.created_repo)


class DataServer:
    """Serves `/api/finetune/datasets/<id>/download` like data-service: only with a ticket."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        # Downloads that presented a ticket (as data-service wants it: a Bearer header).
        self.tickets = 0
        # An outage: the next download is cut after `cut_after` bytes, then for `outage_seconds`
        # every request has its connection dropped unanswered (the service is gone), then it
        # serves again, Range requests included (as data-service does).
        self.cut_after: int | None = None
        self.outage_seconds = 0.0
        self.outage_until = 0.0
        self.ranges: list[str] = []
        self.refused = 0
        # A slow download: after `stall_after` bytes the body waits until `stall` is released.
        self.stall_after: int | None = None
        self.stalled = threading.Event()
        self.stall = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if time.monotonic() < server.outage_until:
                    server.refused += 1
                    self.close_connection = True
                    return
                parts = self.path.split("?")[0].strip("/").split("/")
                body = server.files.get(parts[3]) if len(parts) == 5 else None
                # A claim's ticket comes as a Bearer token; runtime tests that hand the worker a
                # ticket of their own may put it in the URL (the server stands in for data-service
                # and for any file server).
                ticket = self.headers.get("Authorization", "").startswith("Bearer ")
                if body is None or not (ticket or "ticket=" in self.path):
                    self.send_response(404)
                    self.end_headers()
                    return
                server.tickets += ticket
                start = 0
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes=") and ranged.endswith("-"):
                    server.ranges.append(ranged)
                    start = int(ranged[len("bytes=") : -1])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if server.stall_after is not None:
                    self.wfile.write(body[start : start + server.stall_after])
                    self.wfile.flush()
                    server.stalled.set()
                    server.stall.wait(120)
                    with contextlib.suppress(OSError):
                        self.wfile.write(body[start + server.stall_after :])
                    return
                if server.cut_after is not None:
                    # The service dies mid-body: the client sees the connection end early.
                    cut, server.cut_after = server.cut_after, None
                    self.wfile.write(body[start : start + cut])
                    self.wfile.flush()
                    server.outage_until = time.monotonic() + server.outage_seconds
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator["DataServer"]:
        thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._httpd.shutdown()
            self._httpd.server_close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


GOOD_CSV = b"text\n" + b"".join(f"sentence number {i}\n".encode() for i in range(20))
BAD_CSV = b"sentence,label\nno text column here,1\n"
