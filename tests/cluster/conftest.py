"""Registers the `cluster` marker: tests that start a local three-node RabbitMQ cluster
(scripts/rabbitmq-cluster.sh)."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "cluster: starts a local three-node RabbitMQ cluster (scripts/rabbitmq-cluster.sh)",
    )
