"""The worker's broker setting may name a cluster's nodes: a comma-separated list of URLs."""

import uuid

import pytest
from pydantic import SecretStr, ValidationError

from contracts.credentials import new_token
from gpu_worker.adapters.enrolment import Enrolment, broker_url
from gpu_worker.config import WorkerSettings
from workerlink.failover import broker_urls

TOKEN = new_token(uuid.uuid4().hex).token
USER = "ftdw-" + "0" * 32


def _enrolment(url: str | None) -> Enrolment:
    return Enrolment(
        worker_id="0" * 32,
        name="box",
        pool="shared",
        broker_url=url,
        broker_username=USER,
        broker_prefix="",
        lease_seconds=90.0,
    )


def test_every_node_is_dialled_as_the_workers_own_user() -> None:
    nodes = "amqps://guest:guest@r1:5671/vh, amqps://r2:5671/vh,amqps://r3/vh"
    url = broker_url(_enrolment(None), TOKEN, override=nodes)
    assert broker_urls(url) == [
        f"amqps://{USER}:{TOKEN}@r1:5671/vh",
        f"amqps://{USER}:{TOKEN}@r2:5671/vh",
        f"amqps://{USER}:{TOKEN}@r3/vh",
    ]
    # The platform may hand out a list too.
    given = broker_url(_enrolment("amqp://r1:5672/,amqp://r2:5672/"), TOKEN, override=None)
    assert given == f"amqp://{USER}:{TOKEN}@r1:5672/,amqp://{USER}:{TOKEN}@r2:5672/"


def test_the_setting_takes_a_list_in_the_same_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTD_WORKER_AMQP_URL", "amqp://u:p@r1:5672/,amqp://u:p@r2:5672/")
    settings = WorkerSettings()
    assert settings.amqp_url is not None
    assert broker_urls(settings.amqp_url.get_secret_value()) == [
        "amqp://u:p@r1:5672/",
        "amqp://u:p@r2:5672/",
    ]
    assert WorkerSettings(amqp_url=SecretStr("amqp://u:p@r1/")).amqp_url is not None


@pytest.mark.parametrize(
    "value", ["http://u:p@r1/", "amqp://u:p@r1/,https://u:p@r2/", "amqp://r1/,amqps://r2/"]
)
def test_anything_but_amqp_urls_is_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        WorkerSettings(amqp_url=SecretStr(value))
