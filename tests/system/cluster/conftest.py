"""The Redis Cluster, sharded-MySQL and RabbitMQ cluster suites run only under `make
test-cluster`, which loads ``tests.system.cluster.topology`` (it starts the Redis Cluster and
switches every suite's settings); the RabbitMQ cluster starts with the first test that needs it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.system.cluster.rabbit_cluster import RabbitCluster, rabbit_cluster
from tests.system.cluster.topology import ACTIVE

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(ACTIVE) == "1":
        return
    skip = pytest.mark.skip(reason="needs the clusters and MySQL shards: make test-cluster")
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(skip)


@pytest.fixture(scope="package")
async def rabbit() -> AsyncIterator[RabbitCluster]:
    """A real 3-node RabbitMQ cluster, started when the first test asks for it and stopped
    after this package's last test (its three nodes are not idle on a busy machine)."""
    async with rabbit_cluster() as cluster:
        yield cluster
