"""A training_data_url a user gave, fetched by the worker: only through the SSRF guard, with loopback
listeners standing in for internal servers (an injected resolver maps test names to them) and a
throwaway CA. A refused fetch never reaches the listener; what the user is told never quotes what
a server sent."""

import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gpu_worker_testing import FakePublisher
from netguard_testing import LoopbackServer, Reply
from tls_testing import Pki, make_pki, server_context

from contracts.enums import FailureClass, JobType
from contracts.events import JobFailed, JobProgress, ModelPushed
from contracts.rpc import DataTicket, JobSpec
from gpu_worker.adapters.download import Downloader, ExternalData, download
from gpu_worker.adapters.publish import LocalCheckpointStore
from gpu_worker.domain.errors import DataRefused
from gpu_worker.domain.outcome import Outcome
from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult
from gpu_worker.entrypoints.toolkit import build_toolkit
from gpu_worker.service_layer.attempt import JobRun, JobSettings
from gpu_worker.training import data as training_data
from netguard import StaticResolver

pytestmark = pytest.mark.integration

SECRET = b"INTERNAL-SECRET-abc123"
# What an internal server might answer: the first line is not a header a trainer knows.
INTERNAL_RESPONSE = SECRET + b",db_password,admin\n" + b"x,y,z\n" * 10
GOOD_CSV = b"text\n" + b"".join(b"sentence number %d\n" % i for i in range(20))

RESOLVER = StaticResolver(
    {
        "localhost": ["127.0.0.1"],
        "files.test": ["127.0.0.1"],
        "internal.test": ["127.0.0.1"],
        "mixed.test": ["93.184.215.14", "127.0.0.1"],
    }
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def https(pki: Pki) -> AsyncIterator[LoopbackServer]:
    """An HTTPS listener whose certificate names localhost (allow-listed in these tests)."""
    server = await LoopbackServer(
        tls=server_context(pki, pki.server, require_client_cert=False)
    ).start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def internal(pki: Pki) -> AsyncIterator[LoopbackServer]:
    """An internal HTTPS server: nothing may reach it."""
    server = await LoopbackServer(
        tls=server_context(pki, pki.server, require_client_cert=False)
    ).start()
    server.routes["/secret.csv"] = Reply(body=INTERNAL_RESPONSE)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def plain() -> AsyncIterator[LoopbackServer]:
    server = await LoopbackServer().start()
    try:
        yield server
    finally:
        await server.close()


def rules(pki: Pki, *allowed: str, deadline: float = 60) -> ExternalData:
    return ExternalData(
        allowed_hosts=allowed,
        resolver=RESOLVER,
        verify=ssl.create_default_context(cafile=pki.ca),
        deadline=deadline,
    )


def external(url: str, max_bytes: int = 1 << 20) -> DataTicket:
    return DataTicket(url=url, external=True, max_bytes=max_bytes, format="csv")


async def refused_download(ticket: DataTicket, tmp_path: Path, how: ExternalData) -> str:
    with pytest.raises(DataRefused) as refused:
        await download(ticket, tmp_path / "data", external=how, retry_for=0)
    message = str(refused.value)
    assert SECRET.decode().lower() not in message.lower()
    return message


@pytest.mark.parametrize("name", ["files.test", "mixed.test"])
async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(
    pki: Pki, internal: LoopbackServer, tmp_path: Path, name: str
) -> None:
    url = internal.url("/secret.csv", host=name)

    message = await refused_download(external(url), tmp_path, rules(pki))

    assert "loopback" in message
    assert name not in message
    assert "127.0.0.1" not in message
    assert internal.connections == 0


async def test_an_allow_listed_host_is_downloaded(
    pki: Pki, https: LoopbackServer, tmp_path: Path
) -> None:
    https.routes["/data.csv"] = Reply(body=GOOD_CSV)

    got = await download(
        external(https.url("/data.csv", host="localhost")),
        tmp_path / "data",
        external=rules(pki, "localhost"),
    )

    assert got.path.read_bytes() == GOOD_CSV
    assert got.size_bytes == len(GOOD_CSV)


async def test_an_https_to_http_redirect_is_refused_after_the_first_hop(
    pki: Pki, https: LoopbackServer, plain: LoopbackServer, tmp_path: Path
) -> None:
    https.routes["/data.csv"] = Reply(302, {"Location": plain.url("/secret.csv", "localhost")})
    plain.routes["/secret.csv"] = Reply(body=INTERNAL_RESPONSE)

    message = await refused_download(
        external(https.url("/data.csv", host="localhost")), tmp_path, rules(pki, "localhost")
    )

    assert "https to plain http" in message
    assert len(https.requests) == 1
    assert plain.connections == 0


@pytest.mark.parametrize("host", ["internal.test", "127.0.0.1", "2130706433"])
async def test_a_redirect_to_an_internal_address_is_refused_after_the_first_hop(
    pki: Pki, https: LoopbackServer, internal: LoopbackServer, tmp_path: Path, host: str
) -> None:
    https.routes["/data.csv"] = Reply(307, {"Location": internal.url("/secret.csv", host)})

    message = await refused_download(
        external(https.url("/data.csv", host="localhost")), tmp_path, rules(pki, "localhost")
    )

    assert "redirect 1" in message
    assert len(https.requests) == 1
    assert internal.connections == 0


async def test_the_download_stops_at_the_tickets_byte_cap(
    pki: Pki, https: LoopbackServer, tmp_path: Path
) -> None:
    https.routes["/big.csv"] = Reply(body=GOOD_CSV * 100, chunked=True)

    message = await refused_download(
        external(https.url("/big.csv", host="localhost"), max_bytes=1000),
        tmp_path,
        rules(pki, "localhost"),
    )

    assert "larger than 1000 bytes" in message
    assert not (tmp_path / "data" / "data.csv").exists()


async def test_the_download_has_a_deadline(pki: Pki, https: LoopbackServer, tmp_path: Path) -> None:
    https.routes["/slow.csv"] = Reply(body=GOOD_CSV, stall=True)

    message = await refused_download(
        external(https.url("/slow.csv", host="localhost")),
        tmp_path,
        rules(pki, "localhost", deadline=0.5),
    )

    assert "did not finish" in message


async def test_an_uploaded_dataset_sends_its_ticket_as_a_bearer_token(
    plain: LoopbackServer, tmp_path: Path
) -> None:
    """Platform URLs are not user input: fetched directly (loopback in development)."""
    plain.routes["/api/finetune/datasets/d1/download"] = Reply(body=GOOD_CSV)
    ticket = DataTicket(
        url=plain.url("/api/finetune/datasets/d1/download"), token="the-data-ticket"
    )

    got = await download(ticket, tmp_path / "data")

    assert got.path.read_bytes() == GOOD_CSV
    assert plain.requests[0].headers["authorization"] == "Bearer the-data-ticket"
    assert "ticket" not in plain.requests[0].path


# --- one attempt (JobRun) -----------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.sent: list[JobProgress | JobFailed | ModelPushed] = []

    def send(self, payload: JobProgress | JobFailed | ModelPushed) -> None:
        self.sent.append(payload)


class Display:
    def start_job(self, spec: Any) -> None:
        pass

    def update(self, job_id: str, state: Any) -> None:
        pass

    def end_job(self, job_id: str, outcome: Any, message: str) -> None:
        pass


def read_with_the_real_loader(req: TrainRequest, reporter: Reporter) -> TrainResult:
    """The trainers' own data loader (pure Python), then nothing: its errors are what matter."""
    training_data.load(req.data_path, req.data_format, req.job_type)
    raise AssertionError("the data should not have loaded")


async def run_job(ticket: DataTicket, tmp_path: Path, how: ExternalData) -> tuple[Outcome, str]:
    spec = JobSpec(
        job_id=uuid.uuid4(),
        attempt=1,
        claim_secret="the-claim-secret",
        job_type=JobType.CLASSIFIER,
        base_model="distilbert-base-uncased",
        output_model="alice/model",
        hyperparameters={},
        data=ticket,
        lease_seconds=30,
        lease_expires_at=datetime.now(UTC) + timedelta(seconds=30),
    )
    sink = Sink()
    run = JobRun(
        spec,
        settings=JobSettings(
            worker_id="w1",
            work_dir=tmp_path / "work",
            progress_interval=0.05,
            stop_grace=5,
        ),
        toolkit=build_toolkit(
            read_with_the_real_loader,
            FakePublisher(tmp_path / "store"),
            lambda spec: LocalCheckpointStore(tmp_path / "checkpoints"),
            data=Downloader(external=how),
        ),
        sink=sink,
        display=Display(),
    )
    outcome = await run.run()
    final = sink.sent[-1]
    assert isinstance(final, JobFailed)
    assert final.failure_class is FailureClass.USER_ERROR
    assert not final.retryable
    return outcome, final.error


async def test_a_parse_error_of_external_data_does_not_quote_it(
    pki: Pki, https: LoopbackServer, tmp_path: Path
) -> None:
    https.routes["/data.csv"] = Reply(body=INTERNAL_RESPONSE)
    ticket = external(https.url("/data.csv", host="localhost"))

    outcome, error = await run_job(ticket, tmp_path, rules(pki, "localhost"))

    assert outcome is Outcome.FAILED
    assert SECRET.decode().lower() not in error.lower()
    assert "db_password" not in error
    assert "not a valid CSV/JSONL for a classifier job" in error
    assert "columns this job type needs are missing" in error
    assert "upload the file" in error


async def test_a_bad_row_of_external_data_is_named_by_its_number(
    pki: Pki, https: LoopbackServer, tmp_path: Path
) -> None:
    rows = b"text,label\n" + b"fine,a\n" * 5 + SECRET + b"\n"  # line 7: one field too few
    https.routes["/data.csv"] = Reply(body=rows + b"more,b,EXTRA-" + SECRET + b"\n")
    ticket = external(https.url("/data.csv", host="localhost"))

    _, error = await run_job(ticket, tmp_path, rules(pki, "localhost"))

    assert SECRET.decode().lower() not in error.lower()
    assert "CSV line 8" in error


async def test_uploaded_data_keeps_the_trainers_detailed_message(
    plain: LoopbackServer, tmp_path: Path
) -> None:
    plain.routes["/api/finetune/datasets/d1/download"] = Reply(body=INTERNAL_RESPONSE)
    ticket = DataTicket(url=plain.url("/api/finetune/datasets/d1/download"), format="csv")

    _, error = await run_job(ticket, tmp_path, ExternalData())

    # The user's own upload: the trainer's report names the columns it did not expect (as
    # header names are compared: without case).
    assert "unexpected ['internal-secret-abc123', 'db_password', 'admin']" in error


async def test_a_refused_url_fails_the_job_as_a_user_error(
    pki: Pki, internal: LoopbackServer, tmp_path: Path
) -> None:
    ticket = external(internal.url("/secret.csv", host="internal.test"))

    outcome, error = await run_job(ticket, tmp_path, rules(pki))

    assert outcome is Outcome.FAILED
    assert "training_data_url was refused" in error
    assert "internal.test" not in error
    assert internal.connections == 0
