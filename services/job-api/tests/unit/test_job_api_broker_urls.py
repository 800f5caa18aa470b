"""A broker setting may name a cluster (several AMQP URLs, comma-separated): job-api reads its
virtual host, the URLs it tells enrolled workers and the URLs a worker with its own broker user
dials from every URL of the list, never with the configured credentials."""

from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import ValidationError

from job_api.adapters.broker_admin import vhost_of, without_credentials
from job_api.config import Settings
from job_api.domain.worker import Worker
from job_api.entrypoints.app import worker_amqp_url
from job_api.entrypoints.deps import AppState
from job_api.entrypoints.routes_workers import _broker_access

CLUSTER = (
    "amqp://job_api:s3cret@rabbit-1:5672/ftd?heartbeat=30, "
    "amqp://job_api:s3cret@rabbit-2:5672/ftd?heartbeat=30,amqp://job_api:s3cret@[fd00::3]/ftd"
)


def _settings(**values: Any) -> Settings:
    return Settings(jwt_secret="unit-test-secret-0123456789abcdef", worker_key="k", **values)


def test_the_vhost_of_a_cluster_is_its_first_urls() -> None:
    assert vhost_of(CLUSTER) == "ftd"
    assert vhost_of("amqp://a:b@one/, amqp://a:b@two/") == "/"
    assert vhost_of("amqp://a:b@one/%2Fteam") == "/team"


def test_credentials_go_from_every_url_of_the_list() -> None:
    assert without_credentials(CLUSTER, keep_query=False) == (
        "amqp://rabbit-1:5672/ftd,amqp://rabbit-2:5672/ftd,amqp://[fd00::3]/ftd"
    )
    assert without_credentials(CLUSTER, keep_query=True) == (
        "amqp://rabbit-1:5672/ftd?heartbeat=30,amqp://rabbit-2:5672/ftd?heartbeat=30,"
        "amqp://[fd00::3]/ftd"
    )


def test_workers_are_told_the_clusters_urls_without_job_apis_credentials() -> None:
    settings = _settings(amqp_url=CLUSTER, broker_management_url="http://admin:pw@rabbit-1:15672")
    told = worker_amqp_url(settings)
    assert told == "amqp://rabbit-1:5672/ftd,amqp://rabbit-2:5672/ftd,amqp://[fd00::3]/ftd"
    # Development without a management API: the workers share job-api's URLs as they are.
    assert worker_amqp_url(_settings(amqp_url=CLUSTER)) == CLUSTER


def test_an_enrolled_worker_dials_every_url_as_itself() -> None:
    public = "amqps://shared:pw@mq-1.example.com/ftd, amqps://shared:pw@mq-2.example.com:5671/ftd"
    state = SimpleNamespace(worker_amqp_url=public, broker_prefix="")
    worker = SimpleNamespace(broker_user="ftdw-1")
    access = _broker_access(cast(AppState, state), cast(Worker, worker))
    assert access.url == "amqps://mq-1.example.com/ftd,amqps://mq-2.example.com:5671/ftd"
    assert access.username == "ftdw-1"


def test_a_public_worker_url_that_is_not_amqp_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(worker_amqp_url="amqp://mq-1/ftd, https://mq-2/ftd")
    assert "broker URL 2 of 2 is not an AMQP URL" in str(refused.value)
