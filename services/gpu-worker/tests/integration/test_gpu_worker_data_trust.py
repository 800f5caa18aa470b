"""An operator's own file server, allow-listed and signed by a private CA, is trusted when the
worker is given that CA (FTD_WORKER_DATA_CA_FILE); without it only the public CAs are, and a
server the worker cannot verify is never read."""

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from netguard_testing import LoopbackServer, Reply, ThrowawayCa, make_ca

from contracts.rpc import DataTicket
from gpu_worker.adapters.download import ExternalData, download, trusting
from gpu_worker.config import WorkerSettings
from gpu_worker.domain.errors import TransientDownloadError

pytestmark = pytest.mark.integration

BODY = b"text\n" + b"".join(b"line %d\n" % i for i in range(20))


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCa:
    return make_ca(tmp_path_factory.mktemp("ca"), ["127.0.0.1"])


@pytest.fixture(scope="module")
def ca_file(ca: ThrowawayCa, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle") / "operator-ca.pem"
    path.write_text(ca.ca_pem)
    return path


@pytest.fixture
async def server(ca: ThrowawayCa) -> AsyncIterator[LoopbackServer]:
    listener = await LoopbackServer(tls=ca.server()).start()
    listener.routes["/data.csv"] = Reply(body=BODY)
    try:
        yield listener
    finally:
        await listener.close()


def _ticket(server: LoopbackServer) -> DataTicket:
    return DataTicket(url=server.url("/data.csv"), external=True, max_bytes=1 << 20, format="csv")


def test_no_bundle_keeps_the_public_cas_only() -> None:
    assert trusting(None) is None


def test_the_bundle_adds_to_the_public_cas_and_still_verifies(
    ca: ThrowawayCa, ca_file: Path
) -> None:
    context = trusting(ca_file)

    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    subjects = [dict(pair[0] for pair in cert["subject"]) for cert in context.get_ca_certs()]
    assert {"commonName": "netguard test CA"} in subjects
    assert len(subjects) > 1, "the public CAs are still trusted"


def test_the_setting_is_read_from_the_environment(
    ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTD_WORKER_DATA_CA_FILE", str(ca_file))

    assert WorkerSettings().data_ca_file == ca_file


async def test_an_allow_listed_server_signed_by_the_operators_ca_is_fetched(
    server: LoopbackServer, ca_file: Path, tmp_path: Path
) -> None:
    rules = ExternalData(allowed_hosts=("127.0.0.1",), verify=trusting(ca_file))

    got = await download(_ticket(server), tmp_path / "data", external=rules, retry_for=0)

    assert got.path.read_bytes() == BODY
    assert [r.path for r in server.requests] == ["/data.csv"]


async def test_without_the_bundle_the_same_server_is_not_trusted(
    server: LoopbackServer, tmp_path: Path
) -> None:
    rules = ExternalData(allowed_hosts=("127.0.0.1",), verify=trusting(None))

    with pytest.raises(TransientDownloadError, match="ConnectError"):
        await download(_ticket(server), tmp_path / "data", external=rules, retry_for=0)

    assert server.connections == 1
    assert server.requests == [], "no request was sent to a server that failed verification"
