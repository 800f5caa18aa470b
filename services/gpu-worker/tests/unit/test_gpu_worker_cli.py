import io
import ssl
import uuid
from datetime import UTC, datetime, timedelta

from rich.console import Console
from typer.testing import CliRunner

from contracts.enums import JobPhase, JobType
from contracts.rpc import DataTicket, JobSpec
from contracts.worker_reports import Progress
from gpu_worker.domain.outcome import Outcome
from gpu_worker.entrypoints.cli import app
from gpu_worker.entrypoints.console import RichDisplay
from workerlink.tls import certificate_problem, tls_context

runner = CliRunner()


def test_hardware_lists_the_job_types_this_machine_takes() -> None:
    result = runner.invoke(app, ["hardware"])
    assert result.exit_code == 0
    assert "embedding" in result.output


def test_a_bad_broker_url_is_one_readable_line() -> None:
    result = runner.invoke(app, ["run", "--amqp-url", "http://broker:5672/"])
    assert result.exit_code == 2
    assert "amqp:// or amqps://" in result.output
    assert "Traceback" not in result.output


def test_the_hardware_command_names_the_classes_a_cpu_takes(monkeypatch) -> None:
    monkeypatch.setattr(
        "gpu_worker.adapters.hardware.detect",
        lambda: __import__("gpu_worker.adapters.hardware").adapters.hardware.Hardware(
            torch=True, cuda_devices=()
        ),
    )
    result = runner.invoke(app, ["hardware"])
    assert result.exit_code == 0
    assert "llm_lora" in result.output
    assert "classes:   cpu " in result.output


def test_tls_context_verifies_the_broker() -> None:
    context = tls_context(ca_file=None, cert_file=None, key_file=None)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def test_a_refused_certificate_is_found_behind_the_connection_error() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    wrapped = ConnectionError("cannot connect")
    wrapped.__cause__ = cause
    assert certificate_problem(wrapped) is cause
    looping = ConnectionError("refused")
    looping.__context__ = OSError("reset")
    looping.__context__.__context__ = looping
    assert certificate_problem(looping) is None


def test_rich_display_shows_progress_and_metrics() -> None:
    out = io.StringIO()
    spec = JobSpec(
        job_id=uuid.uuid4(),
        attempt=1,
        claim_secret="secret-value",
        job_type=JobType.EMBEDDING,
        base_model="m",
        output_model="a/b",
        hyperparameters={},
        data=DataTicket(url="https://x/y?ticket=t"),
        lease_seconds=30,
        lease_expires_at=datetime.now(UTC) + timedelta(seconds=30),
    )
    with RichDisplay(Console(file=out, width=200, force_terminal=False)) as display:
        display.start_job(spec)
        display.update(
            str(spec.job_id),
            Progress(progress=40, phase=JobPhase.TRAINING, step=4, total_steps=10, loss=0.25),
        )
        display.end_job(str(spec.job_id), Outcome.COMPLETED, "pushed file:///x")
    text = out.getvalue()
    assert "completed" in text
    assert "secret-value" not in text
